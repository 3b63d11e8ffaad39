// Command predict is a small example caller of rowcast's PredictionService from Go.
//
// It calls Predict once and PredictBatch once (a few customers) for a model with the demo
// model's signature (credit_default: balance, income, student), prints each output with the
// model version that answered and the decision id of its audit record, and exits non-zero on
// any error. Every call carries a deadline (-timeout).
//
//	go run ./cmd/predict -addr 127.0.0.1:50051 -model credit_default -timeout 5s
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	rowcastv1 "github.com/rowcast/rowcast/clients/go/gen/rowcast/v1"
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

func main() {
	addr := flag.String("addr", "127.0.0.1:50051", "PredictionService address (host:port)")
	model := flag.String("model", "credit_default", "model name")
	timeout := flag.Duration("timeout", 5*time.Second, "deadline of each call")
	flag.Parse()

	if err := run(os.Stdout, *addr, *model, *timeout); err != nil {
		fmt.Fprintf(os.Stderr, "predict: %v\n", err)
		os.Exit(1)
	}
}

func run(out io.Writer, addr, model string, timeout time.Duration) error {
	if timeout <= 0 {
		return fmt.Errorf("-timeout must be positive, got %s", timeout)
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("dial %s: %w", addr, err)
	}
	defer conn.Close()
	client := rowcastv1.NewPredictionServiceClient(conn)

	if err := predictOne(out, client, model, timeout); err != nil {
		return err
	}
	return predictBatch(out, client, model, timeout)
}

func predictOne(
	out io.Writer, client rowcastv1.PredictionServiceClient, model string, timeout time.Duration,
) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c := demoCustomers[0]
	resp, err := client.Predict(ctx, &rowcastv1.PredictRequest{
		Model: model, Features: c.features(), Subject: c.subject,
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

// describe renders a gRPC error as "CODE: message" so scripts can match on the code.
func describe(err error) string {
	s := status.Convert(err)
	return fmt.Sprintf("%s: %s", s.Code(), s.Message())
}
