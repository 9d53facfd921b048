// Command gospiffe-interop is a SPIFFE workload written with go-spiffe v2: it
// fetches its identity from a Workload API the way real Go workloads do and
// checks everything it gets with go-spiffe's own verifiers. It is run by
// test/interop/go-spiffe.test.ts against Anchorage's Workload API.
//
// Usage:
//
//	gospiffe-interop -expect-id spiffe://td/path -audience aud [-socket unix:///path] [-watch-rotation]
//	gospiffe-interop mtls-server -authorize-id spiffe://td/peer [-listen 127.0.0.1:0] [-reply text]
//	gospiffe-interop mtls-client -authorize-id spiffe://td/peer -connect host:port [-message text]
//	gospiffe-interop no-header [-audience aud]
//
// The socket (-socket everywhere) defaults to $SPIFFE_ENDPOINT_SOCKET. On
// success it prints one JSON line (a result object, "ok": true) on stdout and
// exits 0. On any failure it prints one JSON line ("ok": false, the step, the
// gRPC code) on stdout, a message on stderr, and exits 1. With
// -watch-rotation it then watches the X.509 context, writes "interop:
// ready-for-rotation" on stderr once the watch stream delivered its first
// answer, and waits for an answer whose default SVID has another serial
// number.
//
// The subcommands: mtls-server and mtls-client (mtls.go) speak mutual TLS
// with go-spiffe's spiffetls package, authorizing exactly one peer SPIFFE ID,
// and exchange one line each way; no-header (noheader.go) calls every
// Workload API RPC over a raw gRPC connection with and without the security
// header.
package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime/debug"
	"sort"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

const goSpiffeModule = "github.com/spiffe/go-spiffe/v2"

// result is the JSON line printed on success.
type result struct {
	OK                         bool     `json:"ok"`
	GoSpiffeVersion            string   `json:"go_spiffe_version"`
	SpiffeID                   string   `json:"spiffe_id"`
	SVIDCount                  int      `json:"svid_count"`
	Hint                       string   `json:"hint"`
	ChainLength                int      `json:"chain_length"`
	VerifiedChainLength        int      `json:"verified_chain_length"`
	Serial                     string   `json:"serial"`
	NotAfter                   string   `json:"not_after"`
	X509BundleTrustDomains     []string `json:"x509_bundle_trust_domains"`
	X509BundlesRPCTrustDomains []string `json:"x509_bundles_rpc_trust_domains"`
	JWTBundleTrustDomains      []string `json:"jwt_bundle_trust_domains"`
	JWTSubject                 string   `json:"jwt_subject"`
	JWTAudience                []string `json:"jwt_audience"`
	JWTExpiry                  string   `json:"jwt_expiry"`
	JWTValidatedSubject        string   `json:"jwt_validated_subject"`
	JWTWrongAudienceCode       string   `json:"jwt_wrong_audience_code"`
	RotationWatched            bool     `json:"rotation_watched"`
	RotationSeen               bool     `json:"rotation_seen"`
	RotatedSpiffeID            string   `json:"rotated_spiffe_id,omitempty"`
	RotatedSerial              string   `json:"rotated_serial,omitempty"`
	RotatedNotAfter            string   `json:"rotated_not_after,omitempty"`
	WatchUpdates               int      `json:"watch_updates,omitempty"`
}

// failure is the JSON line printed when a step fails.
type failure struct {
	OK       bool   `json:"ok"`
	Step     string `json:"step"`
	GRPCCode string `json:"grpc_code,omitempty"`
	Error    string `json:"error"`
}

type stepError struct {
	step string
	err  error
}

func (e *stepError) Error() string { return e.step + ": " + e.err.Error() }
func (e *stepError) Unwrap() error { return e.err }

func fail(step string, format string, args ...any) error {
	return &stepError{step: step, err: fmt.Errorf(format, args...)}
}

func wrap(step string, err error) error { return &stepError{step: step, err: err} }

// subcommands are the modes other than the default one, by their first argument.
var subcommands = map[string]func(args []string) int{
	"mtls-server": mtlsServerMain,
	"mtls-client": mtlsClientMain,
	"no-header":   noHeaderMain,
	"verify-svid": verifySvidMain,
}

func main() {
	if len(os.Args) > 1 {
		if sub, ok := subcommands[os.Args[1]]; ok {
			os.Exit(sub(os.Args[2:]))
		}
	}
	socket := flag.String("socket", os.Getenv("SPIFFE_ENDPOINT_SOCKET"), "Workload API address, unix:///path (default $SPIFFE_ENDPOINT_SOCKET)")
	expectID := flag.String("expect-id", "", "the SPIFFE ID the default X509-SVID and the JWT-SVID must carry")
	audience := flag.String("audience", "", "audience of the JWT-SVID to fetch")
	watch := flag.Bool("watch-rotation", false, "after the checks, wait for an X.509 context update with a new default SVID")
	timeout := flag.Duration("timeout", 30*time.Second, "limit for the fetches and checks")
	watchTimeout := flag.Duration("watch-timeout", 60*time.Second, "limit for -watch-rotation")
	flag.Parse()

	res, err := run(*socket, *expectID, *audience, *watch, *timeout, *watchTimeout)
	if err != nil {
		f := failure{Step: "setup", Error: err.Error()}
		var se *stepError
		if errors.As(err, &se) {
			f.Step = se.step
			if st, ok := status.FromError(se.err); ok {
				f.GRPCCode = st.Code().String()
			}
		}
		line, _ := json.Marshal(f)
		fmt.Println(string(line))
		fmt.Fprintf(os.Stderr, "interop: FAILED: %v\n", err)
		os.Exit(1)
	}
	line, err := json.Marshal(res)
	if err != nil {
		fmt.Fprintf(os.Stderr, "interop: FAILED: encoding the result: %v\n", err)
		os.Exit(1)
	}
	fmt.Println(string(line))
}

func run(socket, expectID, audience string, watch bool, timeout, watchTimeout time.Duration) (*result, error) {
	if socket == "" {
		return nil, fail("setup", "no Workload API address: pass -socket or set SPIFFE_ENDPOINT_SOCKET")
	}
	if audience == "" {
		return nil, fail("setup", "-audience is required")
	}
	want, err := spiffeid.FromString(expectID)
	if err != nil {
		return nil, fail("setup", "-expect-id %q: %v", expectID, err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	client, err := workloadapi.New(ctx, workloadapi.WithAddr(socket))
	if err != nil {
		return nil, wrap("connect", err)
	}
	defer client.Close()

	res := &result{GoSpiffeVersion: goSpiffeVersion()}

	// X.509: the default SVID must verify against the bundles of the same answer.
	x509ctx, err := client.FetchX509Context(ctx)
	if err != nil {
		return nil, wrap("fetch_x509_context", err)
	}
	svid := x509ctx.DefaultSVID()
	res.SVIDCount = len(x509ctx.SVIDs)
	res.Hint = svid.Hint
	verifiedLen, err := checkSVID(svid, x509ctx.Bundles, want)
	if err != nil {
		return nil, wrap("verify_x509_svid", err)
	}
	res.SpiffeID = svid.ID.String()
	res.ChainLength = len(svid.Certificates)
	res.VerifiedChainLength = verifiedLen
	res.Serial = svid.Certificates[0].SerialNumber.Text(16)
	res.NotAfter = svid.Certificates[0].NotAfter.UTC().Format(time.RFC3339)
	res.X509BundleTrustDomains = x509TrustDomains(x509ctx.Bundles)

	// FetchX509Bundles must agree with the bundles sent with the SVIDs.
	x509Bundles, err := client.FetchX509Bundles(ctx)
	if err != nil {
		return nil, wrap("fetch_x509_bundles", err)
	}
	res.X509BundlesRPCTrustDomains = x509TrustDomains(x509Bundles)
	for _, b := range x509ctx.Bundles.Bundles() {
		other, ok := x509Bundles.Get(b.TrustDomain())
		if !ok {
			return nil, fail("fetch_x509_bundles", "trust domain %s is in FetchX509SVID's bundles but not in FetchX509Bundles'", b.TrustDomain())
		}
		if !sameCerts(b.X509Authorities(), other.X509Authorities()) {
			return nil, fail("fetch_x509_bundles", "the authorities of %s differ between FetchX509SVID and FetchX509Bundles", b.TrustDomain())
		}
	}

	// JWT: fetch, validate locally against FetchJWTBundles, then through the Workload API.
	jwt, err := client.FetchJWTSVID(ctx, jwtsvid.Params{Audience: audience})
	if err != nil {
		return nil, wrap("fetch_jwt_svid", err)
	}
	jwtBundles, err := client.FetchJWTBundles(ctx)
	if err != nil {
		return nil, wrap("fetch_jwt_bundles", err)
	}
	res.JWTBundleTrustDomains = jwtTrustDomains(jwtBundles)
	validated, err := jwtsvid.ParseAndValidate(jwt.Marshal(), jwtBundles, []string{audience})
	if err != nil {
		return nil, wrap("validate_jwt_svid_locally", err)
	}
	if validated.ID != want {
		return nil, fail("validate_jwt_svid_locally", "JWT-SVID subject %s, expected %s", validated.ID, want)
	}
	res.JWTSubject = validated.ID.String()
	res.JWTAudience = validated.Audience
	res.JWTExpiry = validated.Expiry.UTC().Format(time.RFC3339)
	if _, err := jwtsvid.ParseAndValidate(jwt.Marshal(), jwtBundles, []string{audience + "-other"}); err == nil {
		return nil, fail("validate_jwt_svid_locally", "a JWT-SVID for %q was accepted for another audience", audience)
	}

	remote, err := client.ValidateJWTSVID(ctx, jwt.Marshal(), audience)
	if err != nil {
		return nil, wrap("validate_jwt_svid_workload_api", err)
	}
	res.JWTValidatedSubject = remote.ID.String()
	_, err = client.ValidateJWTSVID(ctx, jwt.Marshal(), audience+"-other")
	if err == nil {
		return nil, fail("validate_jwt_svid_workload_api", "the Workload API accepted a JWT-SVID for %q for another audience", audience)
	}
	res.JWTWrongAudienceCode = status.Code(err).String()

	res.OK = true
	if !watch {
		return res, nil
	}
	res.RotationWatched = true
	if err := watchRotation(client, res, want, svid.Certificates[0], watchTimeout); err != nil {
		return nil, wrap("watch_x509_context", err)
	}
	return res, nil
}

// checkSVID verifies the SVID's chain against the bundle set with go-spiffe
// and checks its ID; it returns the length of the verified chain (leaf to
// trust anchor).
func checkSVID(svid *x509svid.SVID, bundles x509bundle.Source, want spiffeid.ID) (int, error) {
	if svid.ID != want {
		return 0, fmt.Errorf("default SVID is %s, expected %s", svid.ID, want)
	}
	id, chains, err := x509svid.Verify(svid.Certificates, bundles)
	if err != nil {
		return 0, err
	}
	if id != want {
		return 0, fmt.Errorf("verified SPIFFE ID is %s, expected %s", id, want)
	}
	if len(chains) == 0 {
		return 0, errors.New("x509svid.Verify returned no chain")
	}
	return len(chains[0]), nil
}

type watcher struct {
	ctx     context.Context
	updates chan *workloadapi.X509Context
	errs    chan error
}

func (w *watcher) OnX509ContextUpdate(c *workloadapi.X509Context) {
	select {
	case w.updates <- c:
	case <-w.ctx.Done():
	}
}

func (w *watcher) OnX509ContextWatchError(err error) {
	if status.Code(err) == codes.Canceled || errors.Is(err, context.Canceled) {
		return
	}
	fmt.Fprintf(os.Stderr, "interop: watch error: %v\n", err)
	select {
	case w.errs <- err:
	default:
	}
}

// watchRotation waits for an X.509 context whose default SVID is not `first`,
// verifies it, and records it in res.
func watchRotation(client *workloadapi.Client, res *result, want spiffeid.ID, first *x509.Certificate, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	w := &watcher{ctx: ctx, updates: make(chan *workloadapi.X509Context), errs: make(chan error, 16)}
	done := make(chan error, 1)
	go func() { done <- client.WatchX509Context(ctx, w) }()

	var lastErr error
	for {
		select {
		case c := <-w.updates:
			res.WatchUpdates++
			svid := c.DefaultSVID()
			if _, err := checkSVID(svid, c.Bundles, want); err != nil {
				return fmt.Errorf("update %d: %w", res.WatchUpdates, err)
			}
			leaf := svid.Certificates[0]
			if leaf.SerialNumber.Cmp(first.SerialNumber) == 0 {
				if res.WatchUpdates == 1 {
					fmt.Fprintf(os.Stderr, "interop: ready-for-rotation serial=%s\n", leaf.SerialNumber.Text(16))
				}
				continue
			}
			res.RotationSeen = true
			res.RotatedSpiffeID = svid.ID.String()
			res.RotatedSerial = leaf.SerialNumber.Text(16)
			res.RotatedNotAfter = leaf.NotAfter.UTC().Format(time.RFC3339)
			return nil
		case err := <-w.errs:
			lastErr = err
		case err := <-done:
			return fmt.Errorf("the watch ended before a rotation: %w", err)
		case <-ctx.Done():
			if lastErr != nil {
				return fmt.Errorf("no rotated SVID within %s after %d update(s); last watch error: %w", limit, res.WatchUpdates, lastErr)
			}
			return fmt.Errorf("no rotated SVID within %s after %d update(s)", limit, res.WatchUpdates)
		}
	}
}

func x509TrustDomains(set *x509bundle.Set) []string {
	out := []string{}
	for _, b := range set.Bundles() {
		out = append(out, b.TrustDomain().Name())
	}
	sort.Strings(out)
	return out
}

func jwtTrustDomains(set *jwtbundle.Set) []string {
	out := []string{}
	for _, b := range set.Bundles() {
		out = append(out, b.TrustDomain().Name())
	}
	sort.Strings(out)
	return out
}

func sameCerts(a, b []*x509.Certificate) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i].Raw, b[i].Raw) {
			return false
		}
	}
	return true
}

func goSpiffeVersion() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	for _, dep := range info.Deps {
		if dep.Path == goSpiffeModule {
			if dep.Replace != nil {
				return dep.Replace.Version
			}
			return dep.Version
		}
	}
	return "unknown"
}

// printJSON prints v as the one JSON line on stdout and returns the exit
// code: 0 when ok, 1 otherwise.
func printJSON(v any, ok bool) int {
	line, err := json.Marshal(v)
	if err != nil {
		fmt.Fprintf(os.Stderr, "interop: FAILED: encoding the result: %v\n", err)
		return 1
	}
	fmt.Println(string(line))
	if !ok {
		return 1
	}
	return 0
}
