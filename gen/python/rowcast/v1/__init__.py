"""Generated from protos/rowcast/v1 by scripts/gen_protos.py. Do not edit."""
