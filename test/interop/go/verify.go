package main

// verify-svid: go-spiffe's own X509-SVID validation of a chain held in a
// file against a trust bundle held in a file, as a relying party that got
// the bundle out of band does. Used by the authority lifecycle tests: after
// a revocation, an SVID of the revoked authority must fail here.

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"flag"
	"fmt"
	"os"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

type verifyResult struct {
	OK       bool   `json:"ok"`
	SpiffeID string `json:"spiffe_id,omitempty"`
	Error    string `json:"error,omitempty"`
}

func readCerts(path string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		certs = append(certs, cert)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("%s: no certificate", path)
	}
	return certs, nil
}

func verifySvidMain(args []string) int {
	fs := flag.NewFlagSet("verify-svid", flag.ContinueOnError)
	chainFile := fs.String("chain", "", "PEM file: the X509-SVID, leaf first")
	bundleFile := fs.String("bundle", "", "PEM file: the trust domain's X.509 authorities")
	trustDomain := fs.String("trust-domain", "", "the trust domain of the bundle")
	if err := fs.Parse(args); err != nil || *chainFile == "" || *bundleFile == "" || *trustDomain == "" {
		return printVerify(verifyResult{Error: "usage: verify-svid -chain FILE -bundle FILE -trust-domain TD"})
	}
	td, err := spiffeid.TrustDomainFromString(*trustDomain)
	if err != nil {
		return printVerify(verifyResult{Error: err.Error()})
	}
	bundle, err := x509bundle.Load(td, *bundleFile)
	if err != nil {
		return printVerify(verifyResult{Error: err.Error()})
	}
	certs, err := readCerts(*chainFile)
	if err != nil {
		return printVerify(verifyResult{Error: err.Error()})
	}
	id, _, err := x509svid.Verify(certs, bundle)
	if err != nil {
		return printVerify(verifyResult{Error: err.Error()})
	}
	return printVerify(verifyResult{OK: true, SpiffeID: id.String()})
}

func printVerify(res verifyResult) int {
	line, _ := json.Marshal(res)
	fmt.Println(string(line))
	if res.OK {
		return 0
	}
	return 1
}
