#!/usr/bin/env node
// A small example caller of rowcast's PredictionService from Node.
//
// Loads the contracts from protos/ at run time (@grpc/proto-loader), calls Predict once with a
// deadline, and prints the response as JSON on stdout. On an error it prints, as JSON on
// stderr, the gRPC code and message and what the rich status details say: the server sends a
// google.rpc.Status in the `grpc-status-details-bin` trailer, decoded here with the vendored
// protos/google/rpc (protobufjs) into the ErrorInfo reason and the BadRequest field violations.
//
//   node predict.js 127.0.0.1:50051 credit_default balance=1800 income=30000 student=No \
//     [--subject cust-1] [--alias canary] [--timeout-ms 5000] [--protos DIR] \
//     [--cacert FILE] [--token-file FILE | --token T] [--insecure]
//
// The suite is secure by default: TLS checked against the CA (--cacert) and a bearer token on
// every call (--token-file or --token). Without the options it reads ROWCAST_CA_FILE,
// ROWCAST_TOKEN / ROWCAST_TOKEN_FILE, then ROWCAST_HOME's tls/ca.pem and auth/admin.token, as the
// Python client does; --insecure (or ROWCAST_INSECURE=on) calls a suite started with --insecure.
//
// A value that reads as a number is sent as number_value, any other as string_value.
// Exit codes: 0 answered, 1 gRPC error, 2 bad command line.
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const { parseArgs } = require('node:util');

const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const protobuf = require('protobufjs');

// Field names as in the .proto (snake_case), int64 as decimal strings, enums by name, unset
// fields with their defaults, and the name of the set member of each oneof.
const LOAD_OPTIONS = { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true };
const USAGE =
  'usage: node predict.js TARGET MODEL name=value... ' +
  '[--subject S] [--alias A] [--timeout-ms N] [--protos DIR] ' +
  '[--cacert FILE] [--token-file FILE | --token T] [--insecure]';
const ON = new Set(['on', '1', 'true', 'yes']);

// grpc-js hands the target's host to TLS as the server name (SNI); for an IP address such as
// 127.0.0.1 Node warns once on stderr (DEP0123, RFC 6066 allows no IP there). The certificate
// is still checked against the IP (its subjectAltName), so the warning is noise here, and it
// would break the one-JSON-line contract of stderr: drop that one warning, keep all others.
const emitWarning = process.emitWarning;
process.emitWarning = function emitUnlessIpServerName(warning, ...args) {
  const code = typeof args[0] === 'object' ? args[0]?.code : args[1];
  if (code !== 'DEP0123') {
    emitWarning.call(process, warning, ...args);
  }
};

// A file that exists, else '' (the ROWCAST_HOME defaults apply only when the files are there).
function existing(file) {
  return fs.statSync(file, { throwIfNoEntry: false })?.isFile() ? file : '';
}

// The defaults of rowcast_client.Credentials.from_env.
function securityDefaults(env) {
  const home = env.ROWCAST_HOME || '.rowcast';
  const token = env.ROWCAST_TOKEN || '';
  return {
    cacert: env.ROWCAST_CA_FILE || existing(path.join(home, 'tls', 'ca.pem')),
    token,
    'token-file':
      env.ROWCAST_TOKEN_FILE || (token ? '' : existing(path.join(home, 'auth', 'admin.token'))),
    insecure: ON.has((env.ROWCAST_INSECURE || '').trim().toLowerCase()),
  };
}

function parseCommandLine(argv, env) {
  const defaults = securityDefaults(env);
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      subject: { type: 'string', default: '' },
      alias: { type: 'string', default: '' },
      'timeout-ms': { type: 'string', default: '5000' },
      protos: { type: 'string', default: path.resolve(__dirname, '..', '..', 'protos') },
      cacert: { type: 'string', default: defaults.cacert },
      token: { type: 'string', default: defaults.token },
      'token-file': { type: 'string', default: defaults['token-file'] },
      insecure: { type: 'boolean', default: defaults.insecure },
    },
  });
  const [target, model, ...pairs] = positionals;
  const timeoutMs = Number(values['timeout-ms']);
  if (!target || !model || !(timeoutMs > 0)) {
    throw new Error(USAGE);
  }
  const features = {};
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    if (eq <= 0) {
      throw new Error(`feature ${JSON.stringify(pair)} is not name=value\n${USAGE}`);
    }
    const value = pair.slice(eq + 1);
    const number = Number(value);
    features[pair.slice(0, eq)] =
      value.trim() !== '' && Number.isFinite(number)
        ? { number_value: number }
        : { string_value: value };
  }
  if (!values.insecure && !values.cacert) {
    throw new Error(
      'no CA: give --cacert (or ROWCAST_CA_FILE, or ROWCAST_HOME with tls/ca.pem), ' +
        `or --insecure for a suite started with --insecure\n${USAGE}`,
    );
  }
  return { target, model, features, timeoutMs, ...values };
}

// TLS checked against the CA, composed with call credentials that add
// `authorization: Bearer <token>` to every call (grpc-js sends call credentials only over TLS).
function channelCredentials(args) {
  if (args.insecure) {
    return grpc.credentials.createInsecure();
  }
  const tls = grpc.credentials.createSsl(fs.readFileSync(args.cacert));
  const file = args['token-file'];
  const token = args.token || (file ? fs.readFileSync(file, 'utf8').trim() : '');
  if (!token) {
    return tls;
  }
  const bearer = grpc.credentials.createFromMetadataGenerator((_params, callback) => {
    const metadata = new grpc.Metadata();
    metadata.set('authorization', `Bearer ${token}`);
    callback(null, metadata);
  });
  return grpc.credentials.combineChannelCredentials(tls, bearer);
}

// The rowcast.v1 services, from protos/ (google/protobuf/* come bundled with protobufjs).
function loadRowcast(protosDir) {
  const definition = protoLoader.loadSync('rowcast/v1/prediction_service.proto', {
    ...LOAD_OPTIONS,
    includeDirs: [protosDir],
  });
  return grpc.loadPackageDefinition(definition).rowcast.v1;
}

// Decodes `grpc-status-details-bin` (a serialized google.rpc.Status) into plain objects, one
// per detail, each with its type name under `@type`.
function statusDetails(metadata, protosDir) {
  const [raw] = metadata.get('grpc-status-details-bin');
  if (!raw) {
    return [];
  }
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => path.join(protosDir, target);
  root.loadSync(['google/rpc/status.proto', 'google/rpc/error_details.proto'], LOAD_OPTIONS);
  const status = root.lookupType('google.rpc.Status').decode(raw);
  return status.details.map((any) => {
    const typeName = any.type_url.slice(any.type_url.lastIndexOf('/') + 1);
    const type = root.lookup(typeName);
    if (!(type instanceof protobuf.Type)) {
      return { '@type': typeName };
    }
    return { '@type': typeName, ...type.toObject(type.decode(any.value), LOAD_OPTIONS) };
  });
}

// What a caller branches on: the code, the ErrorInfo reason (unique in the rowcast.dev
// domain) and, for bad input, one entry per bad field.
function describeError(err, protosDir) {
  const out = { code: grpc.status[err.code] ?? String(err.code), message: err.details };
  for (const detail of statusDetails(err.metadata, protosDir)) {
    if (detail['@type'] === 'google.rpc.ErrorInfo') {
      out.reason = detail.reason;
      out.domain = detail.domain;
    } else if (detail['@type'] === 'google.rpc.BadRequest') {
      out.field_violations = detail.field_violations.map((v) => ({
        field: v.field,
        description: v.description,
      }));
    }
  }
  return out;
}

function main() {
  let args;
  let credentials;
  try {
    args = parseCommandLine(process.argv.slice(2), process.env);
    credentials = channelCredentials(args); // reads the CA and token files: a bad path exits 2
  } catch (err) {
    process.stderr.write(`${err.message}\n`);
    process.exit(2);
  }
  const rowcast = loadRowcast(args.protos);
  const client = new rowcast.PredictionService(args.target, credentials);
  const request = {
    model: args.model,
    features: args.features,
    subject: args.subject,
    alias: args.alias,
  };
  client.Predict(request, { deadline: Date.now() + args.timeoutMs }, (err, response) => {
    client.close();
    if (err) {
      process.stderr.write(`${JSON.stringify(describeError(err, args.protos))}\n`);
      process.exitCode = 1;
      return;
    }
    process.stdout.write(`${JSON.stringify(response)}\n`);
  });
}

main();
