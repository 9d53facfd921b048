package main

// The security header, seen from a raw gRPC client: every Workload API RPC,
// called with google.golang.org/grpc and go-spiffe's generated stubs
// (proto/spiffe/workload), once with the "workload.spiffe.io: true" metadata
// and once without it. The SPIFFE Workload API specification requires a
// server to refuse a request without the header with InvalidArgument.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"sort"
	"time"

	"github.com/spiffe/go-spiffe/v2/proto/spiffe/workload"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

const securityHeader = "workload.spiffe.io"

// rpcOutcome is how one call ended: its gRPC code ("OK" for an answer) and,
// for an answer, the SPIFFE IDs or trust domains in it.
type rpcOutcome struct {
	Code    string   `json:"code"`
	Message string   `json:"message,omitempty"`
	Got     []string `json:"got,omitempty"`
}

// noHeaderResult is the JSON line of no-header.
type noHeaderResult struct {
	OK            bool                  `json:"ok"`
	WithHeader    map[string]rpcOutcome `json:"with_header"`
	WithoutHeader map[string]rpcOutcome `json:"without_header"`
	Step          string                `json:"step,omitempty"`
	Error         string                `json:"error,omitempty"`
}

func noHeaderMain(args []string) int {
	res := &noHeaderResult{WithHeader: map[string]rpcOutcome{}, WithoutHeader: map[string]rpcOutcome{}}
	fs := flag.NewFlagSet("no-header", flag.ContinueOnError)
	socket := fs.String("socket", os.Getenv("SPIFFE_ENDPOINT_SOCKET"), "Workload API address, unix:///path (default $SPIFFE_ENDPOINT_SOCKET)")
	audience := fs.String("audience", "spiffe://example.test/no-header", "audience of the JWT-SVID to fetch and validate")
	timeout := fs.Duration("timeout", 10*time.Second, "limit for each call")
	if err := fs.Parse(args); err != nil {
		return printNoHeader(res, "setup", err)
	}
	if *socket == "" {
		return printNoHeader(res, "setup", errors.New("no Workload API address: pass -socket or set SPIFFE_ENDPOINT_SOCKET"))
	}

	// grpc-go resolves unix:///path itself; the Workload API is plaintext over the socket.
	conn, err := grpc.NewClient(*socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return printNoHeader(res, "connect", err)
	}
	defer conn.Close()
	api := workload.NewSpiffeWorkloadAPIClient(conn)

	// With the header first: it shows the calls are right but for the
	// header, and yields a real JWT-SVID for ValidateJWTSVID below.
	token := callAll(api, res.WithHeader, true, *audience, "", *timeout)
	if token == "" {
		token = "not-a-jwt" // the caller has no identity here: the header check must still come first
	}
	callAll(api, res.WithoutHeader, false, *audience, token, *timeout)

	res.OK = true
	return printJSON(res, true)
}

// callAll makes each Workload API call once and records how it ended; it
// returns the JWT-SVID FetchJWTSVID answered with, if any.
func callAll(api workload.SpiffeWorkloadAPIClient, out map[string]rpcOutcome, header bool, audience, token string, timeout time.Duration) string {
	ctx := func() (context.Context, context.CancelFunc) {
		c, cancel := context.WithTimeout(context.Background(), timeout)
		if header {
			c = metadata.AppendToOutgoingContext(c, securityHeader, "true")
		}
		return c, cancel
	}

	// Server streams: the first message (or the error ending the stream) is the answer.
	{
		c, cancel := ctx()
		out["FetchX509SVID"] = firstMessage(c, func(c context.Context) ([]string, error) {
			s, err := api.FetchX509SVID(c, &workload.X509SVIDRequest{})
			if err != nil {
				return nil, err
			}
			m, err := s.Recv()
			if err != nil {
				return nil, err
			}
			ids := []string{}
			for _, svid := range m.Svids {
				ids = append(ids, svid.SpiffeId)
			}
			return ids, nil
		})
		cancel()
	}
	{
		c, cancel := ctx()
		out["FetchX509Bundles"] = firstMessage(c, func(c context.Context) ([]string, error) {
			s, err := api.FetchX509Bundles(c, &workload.X509BundlesRequest{})
			if err != nil {
				return nil, err
			}
			m, err := s.Recv()
			if err != nil {
				return nil, err
			}
			return sortedKeys(m.Bundles), nil
		})
		cancel()
	}
	{
		c, cancel := ctx()
		out["FetchJWTBundles"] = firstMessage(c, func(c context.Context) ([]string, error) {
			s, err := api.FetchJWTBundles(c, &workload.JWTBundlesRequest{})
			if err != nil {
				return nil, err
			}
			m, err := s.Recv()
			if err != nil {
				return nil, err
			}
			return sortedKeys(m.Bundles), nil
		})
		cancel()
	}

	// Unary calls.
	fetched := ""
	{
		c, cancel := ctx()
		out["FetchJWTSVID"] = firstMessage(c, func(c context.Context) ([]string, error) {
			m, err := api.FetchJWTSVID(c, &workload.JWTSVIDRequest{Audience: []string{audience}})
			if err != nil {
				return nil, err
			}
			ids := []string{}
			for _, svid := range m.Svids {
				ids = append(ids, svid.SpiffeId)
				if fetched == "" {
					fetched = svid.Svid
				}
			}
			return ids, nil
		})
		cancel()
	}
	if token == "" {
		token = fetched
	}
	if token != "" {
		c, cancel := ctx()
		out["ValidateJWTSVID"] = firstMessage(c, func(c context.Context) ([]string, error) {
			m, err := api.ValidateJWTSVID(c, &workload.ValidateJWTSVIDRequest{Audience: audience, Svid: token})
			if err != nil {
				return nil, err
			}
			return []string{m.SpiffeId}, nil
		})
		cancel()
	}
	return fetched
}

func firstMessage(ctx context.Context, call func(context.Context) ([]string, error)) rpcOutcome {
	got, err := call(ctx)
	if err != nil {
		st, _ := status.FromError(err)
		return rpcOutcome{Code: st.Code().String(), Message: st.Message()}
	}
	return rpcOutcome{Code: "OK", Got: got}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func printNoHeader(res *noHeaderResult, step string, err error) int {
	res.Step = step
	res.Error = err.Error()
	fmt.Fprintf(os.Stderr, "interop: FAILED: %s: %v\n", step, err)
	return printJSON(res, false)
}
