// Command predict is a small example caller of rowcast's PredictionService from Go.
//
// It calls Predict once and PredictBatch once (a few customers) for a model with the demo
// model's signature (credit_default: balance, income, student), prints each output with the
// model version that answered and the decision id of its audit record, and exits non-zero on
// any error: the gRPC code and message, then what the status details say (the ErrorInfo reason
// and each BadRequest field violation). Every call carries a deadline (-timeout). -feature
// name=value (repeatable) overrides an input of the single Predict, e.g. -feature income=lots
// to see a bad request's details.
//
// The suite is secure by default: the caller checks the server's certificate against the CA
// (-cacert) and sends a bearer token (-token or -token-file) on every call. Without the flags
// it reads ROWCAST_CA_FILE, ROWCAST_TOKEN / ROWCAST_TOKEN_FILE, then ROWCAST_HOME's tls/ca.pem
// and auth/admin.token, as the Python client does; -insecure (or ROWCAST_INSECURE=on) calls a
// suite started with --insecure in plain text.
//
//	go run ./cmd/predict -addr 127.0.0.1:50051 -model credit_default -timeout 5s \
//	  -cacert .rowcast/tls/ca.pem -token-file .rowcast/auth/predictor.token
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"

	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	rowcastv1 "github.com/rowcast/rowcast/gen/go/rowcast/v1"
)

// customer is one set of demo-model inputs.
type customer struct {
	subject string
	balance float64
	income  float64
	student string
}

// demoCustomers spans the model's input space: low and high balances, students and not.
var demoCustomers = []customer{
	{"go-cust-1", 1800, 30000, "No"},
	{"go-cust-2", 250, 52000, "No"},
	{"go-cust-3", 2100, 14000, "Yes"},
	{"go-cust-4", 900, 21000, "Yes"},
}

func (c customer) features() map[string]*rowcastv1.FeatureValue {
	return map[string]*rowcastv1.FeatureValue{
		"balance": {Kind: &rowcastv1.FeatureValue_NumberValue{NumberValue: c.balance}},
		"income":  {Kind: &rowcastv1.FeatureValue_NumberValue{NumberValue: c.income}},
		"student": {Kind: &rowcastv1.FeatureValue_StringValue{StringValue: c.student}},
	}
}

// overrides collects -feature name=value flags: a value that parses as a number is sent as
// number_value, any other as string_value.
type overrides map[string]*rowcastv1.FeatureValue

func (o overrides) String() string { return fmt.Sprint(len(o), " overrides") }

func (o overrides) Set(arg string) error {
	name, value, ok := strings.Cut(arg, "=")
	if !ok || name == "" {
		return fmt.Errorf("want name=value, got %q", arg)
	}
	if x, err := strconv.ParseFloat(value, 64); err == nil {
		o[name] = &rowcastv1.FeatureValue{Kind: &rowcastv1.FeatureValue_NumberValue{NumberValue: x}}
	} else {
		o[name] = &rowcastv1.FeatureValue{Kind: &rowcastv1.FeatureValue_StringValue{StringValue: value}}
	}
	return nil
}

func main() {
	addr := flag.String("addr", "127.0.0.1:50051", "PredictionService address (host:port)")
	model := flag.String("model", "credit_default", "model name")
	timeout := flag.Duration("timeout", 5*time.Second, "deadline of each call")
	set := overrides{}
	flag.Var(set, "feature", "name=value: override an input of the single Predict (repeatable)")
	sec := securityFromEnv()
	flag.StringVar(&sec.caFile, "cacert", sec.caFile,
		"CA certificate (PEM) the server's certificate is checked against (TLS)")
	flag.StringVar(&sec.token, "token", sec.token, "bearer token sent on every call")
	flag.StringVar(&sec.tokenFile, "token-file", sec.tokenFile, "file holding the bearer token")
	flag.BoolVar(&sec.insecure, "insecure", sec.insecure,
		"plain text, no token: a suite started with --insecure (local experiments only)")
	flag.Parse()

	if err := run(os.Stdout, *addr, *model, *timeout, set, sec); err != nil {
		fmt.Fprintf(os.Stderr, "predict: %v\n", err)
		os.Exit(1)
	}
}

func run(
	out io.Writer, addr, model string, timeout time.Duration, set overrides, sec security,
) error {
	if timeout <= 0 {
		return fmt.Errorf("-timeout must be positive, got %s", timeout)
	}
	opts, err := sec.dialOptions()
	if err != nil {
		return err
	}
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		return fmt.Errorf("dial %s: %w", addr, err)
	}
	defer conn.Close()
	client := rowcastv1.NewPredictionServiceClient(conn)

	if err := predictOne(out, client, model, timeout, set); err != nil {
		return err
	}
	return predictBatch(out, client, model, timeout)
}

func predictOne(
	out io.Writer, client rowcastv1.PredictionServiceClient, model string, timeout time.Duration,
	set overrides,
) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c := demoCustomers[0]
	features := c.features()
	for name, value := range set {
		features[name] = value
	}
	resp, err := client.Predict(ctx, &rowcastv1.PredictRequest{
		Model: model, Features: features, Subject: c.subject,
	})
	if err != nil {
		return fmt.Errorf("Predict: %s", describe(err))
	}
	fmt.Fprintf(out, "predict output=%.6f version=%d decision_id=%s source=%s\n",
		resp.GetOutput(), resp.GetModelVersion(), resp.GetDecisionId(), resp.GetSource())
	return nil
}

func predictBatch(
	out io.Writer, client rowcastv1.PredictionServiceClient, model string, timeout time.Duration,
) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	inputs := make([]*rowcastv1.PredictInput, 0, len(demoCustomers))
	for _, c := range demoCustomers {
		inputs = append(inputs, &rowcastv1.PredictInput{Features: c.features(), Subject: c.subject})
	}
	resp, err := client.PredictBatch(ctx, &rowcastv1.PredictBatchRequest{Model: model, Inputs: inputs})
	if err != nil {
		return fmt.Errorf("PredictBatch: %s", describe(err))
	}
	if got := len(resp.GetResponses()); got != len(inputs) {
		return fmt.Errorf("PredictBatch: %d responses for %d inputs", got, len(inputs))
	}
	fmt.Fprintf(out, "batch size=%d\n", len(resp.GetResponses()))
	for i, r := range resp.GetResponses() {
		fmt.Fprintf(out, "batch[%d] output=%.6f version=%d decision_id=%s source=%s\n",
			i, r.GetOutput(), r.GetModelVersion(), r.GetDecisionId(), r.GetSource())
	}
	return nil
}

// describe renders a gRPC error as "CODE: message" so scripts can match on the code, then one
// line per rich detail the server sent in grpc-status-details-bin (a google.rpc.Status):
// the ErrorInfo's reason and domain, and each BadRequest field violation.
func describe(err error) string {
	s := status.Convert(err)
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s", s.Code(), s.Message())
	for _, detail := range s.Details() {
		switch d := detail.(type) {
		case *errdetails.ErrorInfo:
			fmt.Fprintf(&b, "\n  reason=%s domain=%s", d.GetReason(), d.GetDomain())
		case *errdetails.BadRequest:
			for _, v := range d.GetFieldViolations() {
				fmt.Fprintf(&b, "\n  field_violation field=%s description=%q",
					v.GetField(), v.GetDescription())
			}
		}
	}
	return b.String()
}
