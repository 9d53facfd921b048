package main

// Mutual TLS with go-spiffe's spiffetls package: a server and a client that
// get their X509-SVID and bundles from the Workload API (an X509Source),
// authorize exactly one peer SPIFFE ID with tlsconfig.AuthorizeID, and
// exchange one line each way.

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
)

// listeningMarker is written on stderr, followed by the address, once the
// server accepts connections.
const listeningMarker = "interop: listening "

// mtlsResult is the JSON line of mtls-server and mtls-client, success or failure.
type mtlsResult struct {
	OK   bool   `json:"ok"`
	Mode string `json:"mode"`
	// This program's own SPIFFE ID (its X509Source's SVID).
	SpiffeID string `json:"spiffe_id,omitempty"`
	// The only peer ID it accepts.
	AuthorizedID string `json:"authorized_id"`
	Addr         string `json:"addr,omitempty"`
	// The peer's SPIFFE ID, once the handshake verified it.
	PeerID     string `json:"peer_id,omitempty"`
	TLSVersion string `json:"tls_version,omitempty"`
	Received   string `json:"received,omitempty"`
	Sent       string `json:"sent,omitempty"`
	// On failure: where, why, and, when the failure is the authorizer
	// refusing the peer, the SPIFFE ID it refused.
	Step          string `json:"step,omitempty"`
	Error         string `json:"error,omitempty"`
	RefusedPeerID string `json:"refused_peer_id,omitempty"`
}

// refusal is what the authorizer returns for a peer it does not accept: the
// error of go-spiffe's own authorizer, marked so that a handshake error can
// be told apart from every other reason a connection fails.
type refusal struct {
	peer spiffeid.ID
	err  error
}

func (r *refusal) Error() string { return r.err.Error() }
func (r *refusal) Unwrap() error { return r.err }

// authorizeExactly is tlsconfig.AuthorizeID(want), with refusals marked.
func authorizeExactly(want spiffeid.ID) tlsconfig.Authorizer {
	allow := tlsconfig.AuthorizeID(want)
	return func(id spiffeid.ID, chains [][]*x509.Certificate) error {
		if err := allow(id, chains); err != nil {
			return &refusal{peer: id, err: err}
		}
		return nil
	}
}

// failed records a failure at `step` in res.
func (res *mtlsResult) failed(step string, err error) {
	res.OK = false
	res.Step = step
	res.Error = err.Error()
	var r *refusal
	if errors.As(err, &r) {
		res.RefusedPeerID = r.peer.String()
	}
}

type mtlsFlags struct {
	socket      string
	authorizeID spiffeid.ID
	timeout     time.Duration
}

func parseMtlsFlags(fs *flag.FlagSet, args []string) (*mtlsFlags, error) {
	socket := fs.String("socket", os.Getenv("SPIFFE_ENDPOINT_SOCKET"), "Workload API address, unix:///path (default $SPIFFE_ENDPOINT_SOCKET)")
	authorize := fs.String("authorize-id", "", "the one SPIFFE ID the peer must have")
	timeout := fs.Duration("timeout", 30*time.Second, "limit for the whole run")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if *socket == "" {
		return nil, errors.New("no Workload API address: pass -socket or set SPIFFE_ENDPOINT_SOCKET")
	}
	id, err := spiffeid.FromString(*authorize)
	if err != nil {
		return nil, fmt.Errorf("-authorize-id %q: %w", *authorize, err)
	}
	return &mtlsFlags{socket: *socket, authorizeID: id, timeout: *timeout}, nil
}

// x509Source is the program's identity: an X509Source on the Workload API,
// ready once it holds an SVID.
func x509Source(ctx context.Context, socket string, res *mtlsResult) (*workloadapi.X509Source, error) {
	source, err := workloadapi.NewX509Source(ctx, workloadapi.WithClientOptions(workloadapi.WithAddr(socket)))
	if err != nil {
		return nil, err
	}
	svid, err := source.GetX509SVID()
	if err != nil {
		source.Close()
		return nil, err
	}
	res.SpiffeID = svid.ID.String()
	return source, nil
}

// handshaker is what spiffetls's connections (a *tls.Conn inside) offer.
type handshaker interface {
	HandshakeContext(ctx context.Context) error
	ConnectionState() tls.ConnectionState
}

// exchange reads a line and answers one (server), or sends a line and reads
// the answer (client).
func exchange(conn net.Conn, res *mtlsResult, line string, serverSide bool) error {
	r := bufio.NewReader(conn)
	if serverSide {
		got, err := r.ReadString('\n')
		if err != nil {
			return fmt.Errorf("reading the client's line (got %q): %w", got, err)
		}
		res.Received = strings.TrimSuffix(got, "\n")
	}
	if _, err := conn.Write([]byte(line + "\n")); err != nil {
		return fmt.Errorf("writing: %w", err)
	}
	res.Sent = line
	if !serverSide {
		got, err := r.ReadString('\n')
		if err != nil {
			return fmt.Errorf("reading the server's line (got %q): %w", got, err)
		}
		res.Received = strings.TrimSuffix(got, "\n")
	}
	return nil
}

// peerOf records the verified peer of an established connection.
func peerOf(conn net.Conn, res *mtlsResult) error {
	if h, ok := conn.(handshaker); ok {
		res.TLSVersion = tls.VersionName(h.ConnectionState().Version)
	}
	id, err := spiffetls.PeerIDFromConn(conn)
	if err != nil {
		return err
	}
	res.PeerID = id.String()
	return nil
}

func mtlsServerMain(args []string) int {
	res := &mtlsResult{Mode: "server"}
	fs := flag.NewFlagSet("mtls-server", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:0", "TCP address to listen on")
	reply := fs.String("reply", "hello from go-spiffe", "the line to answer with")
	f, err := parseMtlsFlags(fs, args)
	if err != nil {
		res.failed("setup", err)
		return printMtls(res)
	}
	res.AuthorizedID = f.authorizeID.String()
	ctx, cancel := context.WithTimeout(context.Background(), f.timeout)
	defer cancel()

	source, err := x509Source(ctx, f.socket, res)
	if err != nil {
		res.failed("x509_source", err)
		return printMtls(res)
	}
	defer source.Close()

	ln, err := spiffetls.ListenWithMode(ctx, "tcp", *listen, spiffetls.MTLSServerWithSource(authorizeExactly(f.authorizeID), source))
	if err != nil {
		res.failed("listen", err)
		return printMtls(res)
	}
	defer ln.Close()
	res.Addr = ln.Addr().String()
	fmt.Fprintf(os.Stderr, "%s%s\n", listeningMarker, res.Addr)

	// Accept does not take a context: closing the listener ends it.
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	conn, err := ln.Accept()
	stop()
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("no connection within %s: %w", f.timeout, err)
		}
		res.failed("accept", err)
		return printMtls(res)
	}
	defer conn.Close()
	if deadline, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(deadline)
	}

	h, ok := conn.(handshaker)
	if !ok {
		res.failed("mtls_handshake", fmt.Errorf("spiffetls returned a %T, which cannot do a TLS handshake", conn))
		return printMtls(res)
	}
	if err := h.HandshakeContext(ctx); err != nil {
		res.failed("mtls_handshake", err)
		return printMtls(res)
	}
	if err := peerOf(conn, res); err != nil {
		res.failed("peer_id", err)
		return printMtls(res)
	}
	if err := exchange(conn, res, *reply, true); err != nil {
		res.failed("exchange", err)
		return printMtls(res)
	}
	res.OK = true
	return printMtls(res)
}

func mtlsClientMain(args []string) int {
	res := &mtlsResult{Mode: "client"}
	fs := flag.NewFlagSet("mtls-client", flag.ContinueOnError)
	connect := fs.String("connect", "", "host:port of the mTLS server")
	message := fs.String("message", "hello from go-spiffe", "the line to send")
	f, err := parseMtlsFlags(fs, args)
	if err == nil && *connect == "" {
		err = errors.New("-connect is required")
	}
	if err != nil {
		res.failed("setup", err)
		return printMtls(res)
	}
	res.AuthorizedID = f.authorizeID.String()
	res.Addr = *connect
	ctx, cancel := context.WithTimeout(context.Background(), f.timeout)
	defer cancel()

	source, err := x509Source(ctx, f.socket, res)
	if err != nil {
		res.failed("x509_source", err)
		return printMtls(res)
	}
	defer source.Close()

	// DialWithMode completes the handshake (tls.Dial) before it returns.
	dialer := &net.Dialer{Timeout: f.timeout}
	conn, err := spiffetls.DialWithMode(ctx, "tcp", *connect, spiffetls.MTLSClientWithSource(authorizeExactly(f.authorizeID), source), spiffetls.WithDialer(dialer))
	if err != nil {
		res.failed("mtls_dial", err)
		return printMtls(res)
	}
	defer conn.Close()
	if deadline, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(deadline)
	}
	if err := peerOf(conn, res); err != nil {
		res.failed("peer_id", err)
		return printMtls(res)
	}
	if err := exchange(conn, res, *message, false); err != nil {
		res.failed("exchange", err)
		return printMtls(res)
	}
	res.OK = true
	return printMtls(res)
}

func printMtls(res *mtlsResult) int {
	if !res.OK {
		fmt.Fprintf(os.Stderr, "interop: FAILED: %s: %s\n", res.Step, res.Error)
	}
	return printJSON(res, res.OK)
}
