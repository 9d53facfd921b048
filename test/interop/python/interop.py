"""A SPIFFE workload written with py-spiffe (PyPI package `spiffe`).

It uses the Workload API the way a Python workload does, through py-spiffe's
WorkloadApiClient, X509Source and JwtSource, and prints ONE JSON line on
stdout describing everything it got, for test/interop/py-spiffe.test.ts to
assert on. Each part is reported on its own ({"error": {...}} in place of a
part that failed), so that one failing RPC does not hide the others.

Usage:
  interop.py identity --socket unix:///path --expect-id spiffe://td/x --audience AUD
  interop.py denied   --socket unix:///path --audience AUD --token JWT
  interop.py no-header --socket unix:///path --audience AUD

identity   fetches and checks the X509-SVID, the X.509 and JWT bundles and a
           JWT-SVID, and validates the JWT-SVID locally and through the API.
denied     for a caller without identity: each RPC through py-spiffe, and how
           the library reports the refusal.
no-header  raw gRPC calls (grpcio, py-spiffe's generated stubs) without the
           `workload.spiffe.io: true` header, and one with it for contrast.

The exit code is 0 when the program could report (whatever it found; the
test judges it), 2 on a usage error.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import hashlib
import json
import sys
import time
from importlib import metadata
from typing import Any, Callable, Dict, List, Optional

import grpc
import jwt as pyjwt
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from google.protobuf.json_format import MessageToDict

from spiffe import JwtSource, JwtSvid, SpiffeId, WorkloadApiClient, X509Source

try:  # py-spiffe's generated gRPC code (a private module: a later version may move it)
    from spiffe._proto import workload_pb2, workload_pb2_grpc
except ImportError:
    workload_pb2 = workload_pb2_grpc = None  # type: ignore[assignment]

# The RPC timeout for one-shot calls and the wait for a source's first update.
TIMEOUT_S = 15.0
HEADER = ('workload.spiffe.io', 'true')


# --- helpers --------------------------------------------------------------------------


def describe_error(err: BaseException) -> Dict[str, Any]:
    """The exception as py-spiffe raised it, and the gRPC status under it, if any."""
    out: Dict[str, Any] = {'type': type(err).__name__, 'message': str(err)}
    chain: List[str] = []
    cur: Optional[BaseException] = err
    while cur is not None:
        if cur is not err:
            chain.append(type(cur).__name__)
        if isinstance(cur, grpc.RpcError) and isinstance(cur, grpc.Call):
            out['grpc_code'] = cur.code().name
            out['grpc_details'] = cur.details()
            break
        cur = cur.__cause__ or cur.__context__
    if chain:
        out['causes'] = chain
    return out


def part(fn: Callable[[], Dict[str, Any]]) -> Dict[str, Any]:
    try:
        return fn()
    except Exception as err:  # reported, judged by the test
        return {'error': describe_error(err)}


def pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode('ascii')


def spki_b64(key: Any) -> str:
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode('ascii')


def iso(t: datetime.datetime) -> str:
    return t.astimezone(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')


def uri_sans(cert: x509.Certificate) -> List[str]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return ext.value.get_values_for_type(x509.UniformResourceIdentifier)


def key_signs_for(private_key: Any, public_key: Any) -> bool:
    """Signs with the SVID's private key and verifies with the leaf's public key."""
    data = b'py-spiffe interop: proof of possession'
    try:
        if isinstance(private_key, ec.EllipticCurvePrivateKey):
            public_key.verify(private_key.sign(data, ec.ECDSA(hashes.SHA256())), data, ec.ECDSA(hashes.SHA256()))
        elif isinstance(private_key, rsa.RSAPrivateKey):
            public_key.verify(private_key.sign(data, padding.PKCS1v15(), hashes.SHA256()), data, padding.PKCS1v15(), hashes.SHA256())
        elif isinstance(private_key, ed25519.Ed25519PrivateKey):
            public_key.verify(private_key.sign(data), data)
        else:
            raise TypeError(f'unexpected private key type {type(private_key).__name__}')
    except InvalidSignature:
        return False
    return True


def is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def verify_chain(chain: List[x509.Certificate], authorities: List[x509.Certificate], now: datetime.datetime) -> Dict[str, Any]:
    """Path validation from the leaf to one of `authorities`, with cryptography.

    py-spiffe has no X.509-SVID verifier of its own (its X509Svid.parse_raw only
    checks the profile of each certificate), so this walks the chain: every
    certificate signed by the next, all of them valid now, the intermediates
    and the anchor CAs, and the last one issued by an authority of the bundle.
    """
    path = list(chain)
    for cert in path:
        if not (cert.not_valid_before_utc <= now <= cert.not_valid_after_utc):
            raise ValueError(f'certificate {cert.serial_number:x} is not valid now ({iso(cert.not_valid_before_utc)} .. {iso(cert.not_valid_after_utc)})')
    for child, parent in zip(path, path[1:]):
        if not is_ca(parent):
            raise ValueError(f'certificate {parent.serial_number:x} signs but is not a CA')
        child.verify_directly_issued_by(parent)
    last = path[-1]
    for anchor in authorities:
        try:
            last.verify_directly_issued_by(anchor)
        except (ValueError, TypeError, InvalidSignature):
            continue
        if not is_ca(anchor) or not (anchor.not_valid_before_utc <= now <= anchor.not_valid_after_utc):
            raise ValueError('the anchoring authority is not a CA, or not valid now')
        path.append(anchor)
        return {
            'length': len(path),
            'anchor_sha256': hashlib.sha256(anchor.public_bytes(serialization.Encoding.DER)).hexdigest(),
        }
    raise ValueError(f'no authority of the bundle issued certificate {last.serial_number:x} ({last.issuer.rfc4514_string()})')


def policy_verify(chain: List[x509.Certificate], authorities: List[x509.Certificate], now: datetime.datetime) -> Dict[str, Any]:
    """The same chain through cryptography's own path builder (x509.verification, client profile)."""
    from cryptography.x509.verification import PolicyBuilder, Store

    verifier = PolicyBuilder().store(Store(authorities)).time(now).build_client_verifier()
    verified = verifier.verify(chain[0], chain[1:])
    return {'length': len(verified.chain)}


def authorities_pem(bundle: Any) -> List[str]:
    return sorted(pem(c) for c in bundle.x509_authorities)


def td_names(bundles: Any) -> List[str]:
    return sorted(b.trust_domain.name for b in bundles)


def jwt_keys(bundle: Any) -> Dict[str, str]:
    return {kid: spki_b64(key) for kid, key in sorted(bundle.jwt_authorities.items())}


def versions() -> Dict[str, str]:
    out = {'python': '.'.join(str(v) for v in sys.version_info[:3])}
    for dist in ('spiffe', 'grpcio', 'cryptography', 'PyJWT', 'protobuf'):
        out[dist] = metadata.version(dist)
    return out


# --- identity: everything a workload with an entry does ----------------------------------------


def identity(socket: str, expect_id: str, audience: str) -> Dict[str, Any]:
    want = SpiffeId(expect_id)
    td = want.trust_domain
    out: Dict[str, Any] = {'mode': 'identity', 'versions': versions()}
    client = WorkloadApiClient(socket_path=socket, default_timeout=TIMEOUT_S)
    try:
        def x509_part() -> Dict[str, Any]:
            ctx = client.fetch_x509_context()
            svid = ctx.default_svid
            now = datetime.datetime.now(datetime.timezone.utc)
            bundle = ctx.x509_bundle_set.get_bundle_for_trust_domain(svid.spiffe_id.trust_domain)
            res: Dict[str, Any] = {
                'spiffe_id': str(svid.spiffe_id),
                'svid_ids': [str(s.spiffe_id) for s in ctx.x509_svids],
                'leaf_uri_sans': uri_sans(svid.leaf),
                'chain_pem': [pem(c) for c in svid.cert_chain],
                'leaf_serial': format(svid.leaf.serial_number, 'x'),
                'leaf_not_before': iso(svid.leaf.not_valid_before_utc),
                'leaf_not_after': iso(svid.leaf.not_valid_after_utc),
                'private_key_type': type(svid.private_key).__name__,
                'private_key_public_spki_b64': spki_b64(svid.private_key.public_key()),
                'key_matches_leaf': spki_b64(svid.private_key.public_key()) == spki_b64(svid.leaf.public_key()),
                'key_signs_for_leaf': key_signs_for(svid.private_key, svid.leaf.public_key()),
                'bundle_trust_domains': td_names(ctx.x509_bundle_set.bundles),
                'bundle_authorities_pem': authorities_pem(bundle) if bundle else None,
            }
            authorities = list(bundle.x509_authorities) if bundle else []
            res['verified'] = part(lambda: verify_chain(svid.cert_chain, authorities, now))
            res['policy_verified'] = part(lambda: policy_verify(svid.cert_chain, authorities, now))
            return res

        out['x509'] = part(x509_part)

        def x509_source_part() -> Dict[str, Any]:
            with X509Source(socket_path=socket, timeout_in_seconds=TIMEOUT_S) as source:
                ctx = source.get_x509_context()
                bundle = source.get_bundle_for_trust_domain(td)
                return {
                    'spiffe_id': str(ctx.default_svid.spiffe_id),
                    'leaf_serial': format(ctx.default_svid.leaf.serial_number, 'x'),
                    'bundle_trust_domains': td_names(ctx.x509_bundle_set.bundles),
                    'bundle_authorities_pem': authorities_pem(bundle) if bundle else None,
                }

        out['x509_source'] = part(x509_source_part)

        def x509_bundles_part() -> Dict[str, Any]:
            bundles = client.fetch_x509_bundles()
            return {
                'trust_domains': td_names(bundles.bundles),
                'authorities_pem': {b.trust_domain.name: authorities_pem(b) for b in bundles.bundles},
            }

        out['x509_bundles'] = part(x509_bundles_part)

        def jwt_bundles_part() -> Dict[str, Any]:
            bundles = client.fetch_jwt_bundles()
            return {
                'trust_domains': td_names(bundles.bundles),
                'keys': {b.trust_domain.name: jwt_keys(b) for b in bundles.bundles},
            }

        out['jwt_bundles'] = part(jwt_bundles_part)

        def jwt_svid_part() -> Dict[str, Any]:
            svid = client.fetch_jwt_svid(audience={audience})
            return {
                'token': svid.token,
                'spiffe_id': str(svid.spiffe_id),
                'audience': sorted(svid.audience),
                'expiry': int(svid.expiry),
                'header': pyjwt.get_unverified_header(svid.token),
                'claims': pyjwt.decode(svid.token, options={'verify_signature': False}),
            }

        out['jwt_svid'] = part(jwt_svid_part)
        token: Optional[str] = out['jwt_svid'].get('token')

        def jwt_local_part() -> Dict[str, Any]:
            if token is None:
                raise RuntimeError('no JWT-SVID to validate (FetchJWTSVID failed)')
            bundles = client.fetch_jwt_bundles()
            bundle = bundles.get_bundle_for_trust_domain(td)
            if bundle is None:
                raise RuntimeError(f'FetchJWTBundles has no bundle for {td}')
            svid = JwtSvid.parse_and_validate(token, bundle, {audience})
            res: Dict[str, Any] = {
                'spiffe_id': str(svid.spiffe_id),
                'audience': sorted(svid.audience),
                'expiry': int(svid.expiry),
            }
            try:
                JwtSvid.parse_and_validate(token, bundle, {audience + '-other'})
                res['wrong_audience_error'] = None
            except Exception as err:
                res['wrong_audience_error'] = describe_error(err)
            # A signature that is not the authority's: flip one byte in the middle of it.
            head, payload, sig = token.split('.')
            raw = bytearray(base64.urlsafe_b64decode(sig + '=' * (-len(sig) % 4)))
            raw[len(raw) // 2] ^= 0x01
            tampered = f'{head}.{payload}.{base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")}'
            try:
                JwtSvid.parse_and_validate(tampered, bundle, {audience})
                res['tampered_error'] = None
            except Exception as err:
                res['tampered_error'] = describe_error(err)
            return res

        out['jwt_local'] = part(jwt_local_part)

        def jwt_source_part() -> Dict[str, Any]:
            with JwtSource(socket_path=socket, timeout_in_seconds=TIMEOUT_S) as source:
                bundle = source.get_bundle_for_trust_domain(td)
                svid = source.fetch_svid(audience={audience})
                validated = JwtSvid.parse_and_validate(svid.token, bundle, {audience}) if bundle else None
                return {
                    'trust_domains': td_names(source.bundles),
                    'keys': jwt_keys(bundle) if bundle else None,
                    'svid_spiffe_id': str(svid.spiffe_id),
                    'validated_spiffe_id': str(validated.spiffe_id) if validated else None,
                }

        out['jwt_source'] = part(jwt_source_part)

        def validate_part() -> Dict[str, Any]:
            if token is None:
                raise RuntimeError('no JWT-SVID to validate (FetchJWTSVID failed)')
            validated = client.validate_jwt_svid(token, audience)
            res: Dict[str, Any] = {'spiffe_id': str(validated.spiffe_id), 'audience': sorted(validated.audience)}
            # py-spiffe's validate_jwt_svid returns the token it was given, parsed without
            # verification, and drops the server's answer; read that answer with its stub.
            if workload_pb2_grpc is None:
                raise RuntimeError('spiffe._proto is not importable in this py-spiffe')
            with grpc.insecure_channel(grpc_target(socket)) as channel:
                stub = workload_pb2_grpc.SpiffeWorkloadAPIStub(channel)
                answer = stub.ValidateJWTSVID(
                    workload_pb2.ValidateJWTSVIDRequest(audience=audience, svid=token),
                    metadata=[HEADER],
                    timeout=TIMEOUT_S,
                )
                res['response_spiffe_id'] = answer.spiffe_id
                res['response_claims'] = MessageToDict(answer.claims)
            try:
                client.validate_jwt_svid(token, audience + '-other')
                res['wrong_audience_error'] = None
            except Exception as err:
                res['wrong_audience_error'] = describe_error(err)
            return res

        out['validate'] = part(validate_part)
    finally:
        client.close()
    return out


# --- denied: a caller without identity ------------------------------------------------------


def denied(socket: str, audience: str, token: str) -> Dict[str, Any]:
    out: Dict[str, Any] = {'mode': 'denied', 'versions': versions()}
    client = WorkloadApiClient(socket_path=socket, default_timeout=TIMEOUT_S)

    def refused(fn: Callable[[], Any]) -> Dict[str, Any]:
        try:
            got = fn()
        except Exception as err:
            return describe_error(err)
        return {'type': None, 'unexpected_answer': repr(got)}

    try:
        out['FetchX509SVID'] = refused(client.fetch_x509_context)
        out['FetchX509Bundles'] = refused(client.fetch_x509_bundles)
        out['FetchJWTSVID'] = refused(lambda: client.fetch_jwt_svid(audience={audience}))
        out['FetchJWTBundles'] = refused(client.fetch_jwt_bundles)
        out['ValidateJWTSVID'] = refused(lambda: client.validate_jwt_svid(token, audience))
        # X509Source retries PERMISSION_DENIED (only CANCELLED and INVALID_ARGUMENT are final),
        # so a source for a caller without identity ends in its start-up timeout.
        started = time.monotonic()
        out['X509Source'] = refused(lambda: X509Source(socket_path=socket, timeout_in_seconds=3))
        out['X509Source']['seconds'] = round(time.monotonic() - started, 1)
    finally:
        client.close()
    return out


# --- no-header: raw gRPC without the security header --------------------------------------


def grpc_target(socket: str) -> str:
    path = socket[len('unix:'):] if socket.startswith('unix:') else socket
    return 'unix:/' + path.lstrip('/')


def no_header(socket: str, audience: str) -> Dict[str, Any]:
    out: Dict[str, Any] = {'mode': 'no-header', 'versions': versions()}
    out['stubs'] = 'spiffe._proto' if workload_pb2_grpc is not None else 'generic'

    def status(call: Callable[[], Any]) -> Dict[str, Any]:
        try:
            call()
        except grpc.RpcError as err:
            assert isinstance(err, grpc.Call)
            return {'code': err.code().name, 'details': err.details()}
        return {'code': 'OK'}

    with grpc.insecure_channel(grpc_target(socket)) as channel:
        if workload_pb2_grpc is not None:
            stub = workload_pb2_grpc.SpiffeWorkloadAPIStub(channel)
            calls = {
                'FetchX509SVID': lambda md: next(stub.FetchX509SVID(workload_pb2.X509SVIDRequest(), metadata=md, timeout=TIMEOUT_S)),
                'FetchX509Bundles': lambda md: next(stub.FetchX509Bundles(workload_pb2.X509BundlesRequest(), metadata=md, timeout=TIMEOUT_S)),
                'FetchJWTSVID': lambda md: stub.FetchJWTSVID(workload_pb2.JWTSVIDRequest(audience=[audience]), metadata=md, timeout=TIMEOUT_S),
                'FetchJWTBundles': lambda md: next(stub.FetchJWTBundles(workload_pb2.JWTBundlesRequest(), metadata=md, timeout=TIMEOUT_S)),
                'ValidateJWTSVID': lambda md: stub.ValidateJWTSVID(
                    workload_pb2.ValidateJWTSVIDRequest(audience=audience, svid='a.b.c'), metadata=md, timeout=TIMEOUT_S
                ),
            }
        else:
            # Raw bytes in and out: an empty message encodes as zero bytes (the header is
            # checked before the request is looked at, so the JWT requests may be empty too).
            def stream(method: str) -> Callable[[Any], Any]:
                rpc = channel.unary_stream(f'/SpiffeWorkloadAPI/{method}')
                return lambda md: next(rpc(b'', metadata=md, timeout=TIMEOUT_S))

            def unary(method: str) -> Callable[[Any], Any]:
                rpc = channel.unary_unary(f'/SpiffeWorkloadAPI/{method}')
                return lambda md: rpc(b'', metadata=md, timeout=TIMEOUT_S)

            calls = {m: stream(m) for m in ('FetchX509SVID', 'FetchX509Bundles', 'FetchJWTBundles')}
            calls.update({m: unary(m) for m in ('FetchJWTSVID', 'ValidateJWTSVID')})
        out['without_header'] = {name: status(lambda c=c: c(None)) for name, c in calls.items()}
        out['header_false'] = {name: status(lambda c=c: c([('workload.spiffe.io', 'false')])) for name, c in calls.items()}
        # For contrast: the same stub and channel with the header get an answer.
        out['with_header_FetchX509Bundles'] = status(lambda: calls['FetchX509Bundles']([HEADER]))
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('mode', choices=['identity', 'denied', 'no-header'])
    p.add_argument('--socket', required=True, help='the Workload API, unix:///path')
    p.add_argument('--expect-id', help='identity: the SPIFFE ID of this caller')
    p.add_argument('--audience', required=True)
    p.add_argument('--token', help='denied: a JWT-SVID to ask ValidateJWTSVID about')
    a = p.parse_args()
    if a.mode == 'identity':
        if not a.expect_id:
            p.error('identity needs --expect-id')
        out = identity(a.socket, a.expect_id, a.audience)
    elif a.mode == 'denied':
        if not a.token:
            p.error('denied needs --token')
        out = denied(a.socket, a.audience, a.token)
    else:
        out = no_header(a.socket, a.audience)
    print(json.dumps(out, sort_keys=True), flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
