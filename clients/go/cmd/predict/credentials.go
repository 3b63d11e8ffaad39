package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// security is how the caller reaches a rowcast server: TLS checked against a CA, and a bearer
// token sent on every call; or, with insecure, plain text and no token (a suite started with
// --insecure, local experiments only).
type security struct {
	caFile    string
	token     string
	tokenFile string
	insecure  bool
}

// securityFromEnv gives the defaults the Python client uses (rowcast_client.Credentials.from_env):
// ROWCAST_CA_FILE, ROWCAST_TOKEN or ROWCAST_TOKEN_FILE, else what `rowcast suite up` writes under
// ROWCAST_HOME (tls/ca.pem, auth/admin.token) when those files exist; ROWCAST_INSECURE=on turns
// both off. Flags override each of them.
func securityFromEnv() security {
	home := os.Getenv("ROWCAST_HOME")
	if home == "" {
		home = ".rowcast"
	}
	s := security{
		caFile:    os.Getenv("ROWCAST_CA_FILE"),
		token:     os.Getenv("ROWCAST_TOKEN"),
		tokenFile: os.Getenv("ROWCAST_TOKEN_FILE"),
	}
	switch strings.ToLower(strings.TrimSpace(os.Getenv("ROWCAST_INSECURE"))) {
	case "on", "1", "true", "yes":
		s.insecure = true
	}
	if s.caFile == "" {
		s.caFile = existing(filepath.Join(home, "tls", "ca.pem"))
	}
	if s.token == "" && s.tokenFile == "" {
		s.tokenFile = existing(filepath.Join(home, "auth", "admin.token"))
	}
	return s
}

func existing(path string) string {
	if info, err := os.Stat(path); err == nil && info.Mode().IsRegular() {
		return path
	}
	return ""
}

// dialOptions turns the settings into transport credentials (TLS with the CA) and per-RPC
// credentials (the token). A token is never sent without TLS.
func (s security) dialOptions() ([]grpc.DialOption, error) {
	if s.insecure {
		return []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, nil
	}
	if s.caFile == "" {
		return nil, errors.New(
			"no CA: give -cacert (or ROWCAST_CA_FILE, or ROWCAST_HOME with tls/ca.pem), " +
				"or -insecure for a suite started with --insecure")
	}
	// The server name checked against the certificate comes from the target (127.0.0.1 or
	// localhost for the local suite: both are in the certificate `rowcast certs init` makes).
	tls, err := credentials.NewClientTLSFromFile(s.caFile, "")
	if err != nil {
		return nil, fmt.Errorf("CA %s: %w", s.caFile, err)
	}
	opts := []grpc.DialOption{grpc.WithTransportCredentials(tls)}
	token := s.token
	if token == "" && s.tokenFile != "" {
		raw, err := os.ReadFile(s.tokenFile)
		if err != nil {
			return nil, fmt.Errorf("token: %w", err)
		}
		token = strings.TrimSpace(string(raw))
	}
	if token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(bearer(token)))
	}
	return opts, nil
}

// bearer sends `authorization: Bearer <token>` on every call, and only over TLS.
type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

func (bearer) RequireTransportSecurity() bool { return true }
