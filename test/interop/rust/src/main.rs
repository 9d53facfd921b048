//! rust-spiffe-interop: a SPIFFE workload written with the `spiffe` crate
//! (rust-spiffe). It fetches its identity from a Workload API the way Rust
//! workloads do (WorkloadApiClient, X509Source, JwtSource), runs the checks
//! the crate itself offers, and prints one JSON line with what it got, so that
//! test/interop/rust-spiffe.test.ts can check it against Anchorage.
//!
//! Usage:
//!
//!   rust-spiffe-interop check  --expect-id spiffe://td/path --audience AUD
//!   rust-spiffe-interop denied --audience AUD --token JWT
//!   rust-spiffe-interop no-header --audience AUD
//!
//! The Workload API address comes from $SPIFFE_ENDPOINT_SOCKET (unix:///path),
//! as for any workload. `check` prints the material it fetched (certificates
//! and keys as base64 DER, JWT bundles as the JWKs the crate kept) and exits 0;
//! a failing step prints {"ok":false,"step":…,"error":…} and exits 1.
//! `denied` makes every Workload API call of the crate once, expecting each to
//! fail, and prints how the crate reported each failure (exit 0).
//! `no-header` makes every Workload API call with tonic directly (raw.rs), with
//! and without the `workload.spiffe.io` security header, and prints each call's
//! gRPC code and message (exit 0).

mod raw;

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

use base64ct::{Base64, Encoding as _};
use serde_json::{json, Map, Value};
use spiffe::transport::TransportError;
use spiffe::{
    JwtBundleSet, JwtSource, JwtSvid, JwtSvidError, SpiffeId, WorkloadApiClient, WorkloadApiError,
    X509BundleSet, X509Source, X509Svid,
};

/// A failed step: its name and the error, as printed in the JSON line.
struct Failure {
    step: &'static str,
    error: Value,
}

fn fail(step: &'static str, message: impl Into<String>) -> Failure {
    Failure {
        step,
        error: json!({ "variant": "Check", "message": message.into() }),
    }
}

fn wrap(step: &'static str) -> impl FnOnce(WorkloadApiError) -> Failure {
    move |e| Failure {
        step,
        error: api_error(&e),
    }
}

/// How the crate reported a Workload API failure: its error variant, the gRPC
/// status code it carries (lowercase, as the crate spells it) and the text.
fn api_error(e: &WorkloadApiError) -> Value {
    let (variant, code) = match e {
        // The crate turns PERMISSION_DENIED into these two variants.
        WorkloadApiError::PermissionDenied(_) => ("PermissionDenied", Some("permission_denied")),
        WorkloadApiError::NoIdentityIssued => ("NoIdentityIssued", Some("permission_denied")),
        WorkloadApiError::Transport(TransportError::Status(s)) => {
            ("Transport::Status", Some(s.code().as_str()))
        }
        WorkloadApiError::Transport(TransportError::Connect(_)) => ("Transport::Connect", None),
        WorkloadApiError::Transport(_) => ("Transport", None),
        WorkloadApiError::MissingEndpointSocket => ("MissingEndpointSocket", None),
        WorkloadApiError::EmptyResponse => ("EmptyResponse", None),
        WorkloadApiError::MissingRequiredField { .. } => ("MissingRequiredField", None),
        WorkloadApiError::InvalidResponseField { .. } => ("InvalidResponseField", None),
        WorkloadApiError::Endpoint(_) => ("Endpoint", None),
        WorkloadApiError::X509Svid(_) => ("X509Svid", None),
        WorkloadApiError::JwtSvid(_) => ("JwtSvid", None),
        WorkloadApiError::X509Bundle(_) => ("X509Bundle", None),
        WorkloadApiError::JwtBundle(_) => ("JwtBundle", None),
        WorkloadApiError::SpiffeId(_) => ("SpiffeId", None),
        _ => ("Other", None),
    };
    json!({ "variant": variant, "grpc_code": code, "message": e.to_string() })
}

/// How JwtSvid::parse_and_validate reported a rejected token.
fn jwt_error(e: &JwtSvidError) -> Value {
    let variant = match e {
        JwtSvidError::InvalidToken(v) => format!("InvalidToken({:?})", v.kind()),
        JwtSvidError::InvalidAudience(..) => "InvalidAudience".to_owned(),
        JwtSvidError::BundleNotFound(_) => "BundleNotFound".to_owned(),
        JwtSvidError::AuthorityNotFound(_) => "AuthorityNotFound".to_owned(),
        other => {
            // Debug of a unit or tuple variant starts with its name.
            let d = format!("{other:?}");
            d.split(['(', ' ', '{']).next().unwrap_or("").to_owned()
        }
    };
    json!({ "variant": variant, "message": e.to_string() })
}

fn b64(bytes: &[u8]) -> String {
    Base64::encode_string(bytes)
}

fn x509_bundles_json(set: &X509BundleSet) -> Value {
    let mut out = Map::new();
    for (td, bundle) in set.iter() {
        let certs: Vec<Value> = bundle
            .authorities()
            .iter()
            .map(|c| Value::String(b64(c.as_bytes())))
            .collect();
        out.insert(td.to_string(), Value::Array(certs));
    }
    Value::Object(out)
}

fn jwt_bundles_json(set: &JwtBundleSet) -> Result<Value, Failure> {
    let mut out = Map::new();
    for (td, bundle) in set.iter() {
        // The crate keeps authorities in a map; sort by key ID for a stable answer.
        let mut keys: BTreeMap<String, Value> = BTreeMap::new();
        for a in bundle.jwt_authorities() {
            let jwk: Value = serde_json::from_slice(a.jwk_json())
                .map_err(|e| fail("fetch_jwt_bundles", format!("JWK of {}: {e}", a.key_id())))?;
            keys.insert(a.key_id().to_owned(), jwk);
        }
        let list: Vec<Value> = keys
            .into_iter()
            .map(|(kid, jwk)| json!({ "kid": kid, "jwk": jwk }))
            .collect();
        out.insert(td.to_string(), Value::Array(list));
    }
    Ok(Value::Object(out))
}

fn svid_json(svid: &X509Svid) -> Result<Value, Failure> {
    let leaf_id = svid
        .leaf()
        .spiffe_id()
        .map_err(|e| fail("fetch_x509_context", format!("leaf SPIFFE ID: {e}")))?;
    Ok(json!({
        "spiffe_id": svid.spiffe_id().to_string(),
        "leaf_uri_spiffe_id": leaf_id.to_string(),
        "hint": svid.hint(),
        "chain": svid.cert_chain().iter().map(|c| b64(c.as_bytes())).collect::<Vec<_>>(),
        "private_key_pkcs8": b64(svid.private_key().as_bytes()),
    }))
}

fn same_svid(a: &X509Svid, b: &X509Svid) -> bool {
    a.spiffe_id() == b.spiffe_id()
        && a.cert_chain().len() == b.cert_chain().len()
        && a.cert_chain()
            .iter()
            .zip(b.cert_chain())
            .all(|(x, y)| x.as_bytes() == y.as_bytes())
        && a.private_key().as_bytes() == b.private_key().as_bytes()
}

fn trust_domains<'a>(names: impl Iterator<Item = &'a spiffe::TrustDomain>) -> Vec<String> {
    let mut v: Vec<String> = names.map(ToString::to_string).collect();
    v.sort();
    v
}

/// The token with one character of its signature changed.
fn tamper(token: &str) -> String {
    let cut = token.rfind('.').map_or(0, |i| i + 1);
    let mut bytes = token.as_bytes().to_vec();
    if let Some(b) = bytes.get_mut(cut) {
        *b = if *b == b'A' { b'B' } else { b'A' };
    }
    String::from_utf8(bytes).unwrap_or_default()
}

async fn check(expect_id: &str, audience: &str) -> Result<Value, Failure> {
    let want = SpiffeId::try_from(expect_id)
        .map_err(|e| fail("setup", format!("--expect-id {expect_id:?}: {e}")))?;
    let client = WorkloadApiClient::connect_env()
        .await
        .map_err(wrap("connect"))?;
    let mut res = Map::new();

    // FetchX509SVID: the whole context, and the default SVID alone.
    let ctx = client
        .fetch_x509_context()
        .await
        .map_err(wrap("fetch_x509_context"))?;
    let default = ctx
        .default_svid()
        .ok_or_else(|| fail("fetch_x509_context", "no default SVID"))?;
    if default.spiffe_id() != &want {
        return Err(fail(
            "fetch_x509_context",
            format!("default SVID is {}, expected {want}", default.spiffe_id()),
        ));
    }
    let alone = client
        .fetch_x509_svid()
        .await
        .map_err(wrap("fetch_x509_svid"))?;
    let all = client
        .fetch_all_x509_svids()
        .await
        .map_err(wrap("fetch_all_x509_svids"))?;
    let mut svid = svid_json(default)?;
    svid["svid_count"] = json!(ctx.svids().len());
    svid["fetch_x509_svid_same"] = json!(same_svid(&alone, default));
    svid["fetch_all_count"] = json!(all.len());
    res.insert("x509_svid".into(), svid);
    res.insert(
        "x509_context_bundles".into(),
        x509_bundles_json(ctx.bundle_set()),
    );

    // FetchX509Bundles.
    let bundles = client
        .fetch_x509_bundles()
        .await
        .map_err(wrap("fetch_x509_bundles"))?;
    res.insert("x509_bundles".into(), x509_bundles_json(&bundles));

    // X509Source (a stream of FetchX509SVID kept up to date in the background).
    let source = X509Source::builder()
        .initial_sync_timeout(Duration::from_secs(20))
        .build()
        .await
        .map_err(|e| fail("x509_source", e.to_string()))?;
    let src_svid = source
        .svid()
        .map_err(|e| fail("x509_source", e.to_string()))?;
    let src_bundles = source
        .bundle_set()
        .map_err(|e| fail("x509_source", e.to_string()))?;
    res.insert(
        "x509_source".into(),
        json!({
            "spiffe_id": src_svid.spiffe_id().to_string(),
            "same_svid_as_client": same_svid(&src_svid, default),
            "bundle_trust_domains": trust_domains(src_bundles.iter().map(|(td, _)| td)),
            "same_bundles_as_client": *src_bundles == **ctx.bundle_set(),
        }),
    );
    source.shutdown().await;

    // FetchJWTSVID, for the default identity and for the expected ID by name.
    let jwt = client
        .fetch_jwt_svid([audience], None)
        .await
        .map_err(wrap("fetch_jwt_svid"))?;
    let by_id = client
        .fetch_jwt_svid([audience], Some(&want))
        .await
        .map_err(wrap("fetch_jwt_svid_by_id"))?;
    res.insert(
        "jwt_svid".into(),
        json!({
            "token": jwt.token(),
            "spiffe_id": jwt.spiffe_id().to_string(),
            "audience": jwt.audience(),
            "expiry": jwt.expiry().unix_timestamp(),
            "key_id": jwt.key_id(),
            "hint": jwt.hint(),
            "by_id_spiffe_id": by_id.spiffe_id().to_string(),
        }),
    );

    // FetchJWTBundles, then the crate's own offline validation against them.
    let jwt_bundles = client
        .fetch_jwt_bundles()
        .await
        .map_err(wrap("fetch_jwt_bundles"))?;
    res.insert("jwt_bundles".into(), jwt_bundles_json(&jwt_bundles)?);
    let local =
        JwtSvid::parse_and_validate(jwt.token(), &jwt_bundles, &[audience]).map_err(|e| {
            Failure {
                step: "validate_jwt_svid_locally",
                error: jwt_error(&e),
            }
        })?;
    let other_audience = format!("{audience}-other");
    let wrong_aud =
        JwtSvid::parse_and_validate(jwt.token(), &jwt_bundles, &[other_audience.as_str()]);
    let tampered = JwtSvid::parse_and_validate(&tamper(jwt.token()), &jwt_bundles, &[audience]);
    res.insert(
        "jwt_local".into(),
        json!({
            "spiffe_id": local.spiffe_id().to_string(),
            "audience": local.audience(),
            "expiry": local.expiry().unix_timestamp(),
            "wrong_audience_error": wrong_aud.err().as_ref().map(jwt_error),
            "tampered_error": tampered.err().as_ref().map(jwt_error),
        }),
    );

    // JwtSource: FetchJWTBundles kept in the background, JWT-SVIDs on demand.
    let jwt_source = JwtSource::builder()
        .initial_sync_timeout(Duration::from_secs(20))
        .build()
        .await
        .map_err(|e| fail("jwt_source", e.to_string()))?;
    let src_bundles = jwt_source
        .bundle_set()
        .map_err(|e| fail("jwt_source", e.to_string()))?;
    let src_jwt = jwt_source
        .fetch_jwt_svid([audience])
        .await
        .map_err(|e| fail("jwt_source", e.to_string()))?;
    let src_validated = JwtSvid::parse_and_validate(src_jwt.token(), &jwt_source, &[audience])
        .map_err(|e| Failure {
            step: "jwt_source",
            error: jwt_error(&e),
        })?;
    res.insert(
        "jwt_source".into(),
        json!({
            "bundle_trust_domains": trust_domains(src_bundles.iter().map(|(td, _)| td)),
            "same_bundles_as_client": *src_bundles == jwt_bundles,
            "svid_spiffe_id": src_jwt.spiffe_id().to_string(),
            "validated_spiffe_id": src_validated.spiffe_id().to_string(),
        }),
    );
    jwt_source.shutdown().await;

    // ValidateJWTSVID: the agent validates; a wrong audience must be refused.
    let remote = client
        .validate_jwt_token(audience, jwt.token())
        .await
        .map_err(wrap("validate_jwt_svid"))?;
    let remote_wrong = client
        .validate_jwt_token(&other_audience, jwt.token())
        .await;
    res.insert(
        "jwt_remote".into(),
        json!({
            "spiffe_id": remote.spiffe_id().to_string(),
            "audience": remote.audience(),
            "wrong_audience_error": remote_wrong.err().as_ref().map(api_error),
        }),
    );

    res.insert("ok".into(), json!(true));
    Ok(Value::Object(res))
}

/// Every Workload API call, from a caller with no identity: how each failed.
async fn denied(audience: &str, token: &str) -> Result<Value, Failure> {
    let client = WorkloadApiClient::connect_env()
        .await
        .map_err(wrap("connect"))?;
    fn outcome<T>(r: Result<T, WorkloadApiError>) -> Value {
        match r {
            Ok(_) => json!({ "ok": true }),
            Err(e) => api_error(&e),
        }
    }
    let mut res = Map::new();
    res.insert(
        "FetchX509SVID".into(),
        outcome(client.fetch_x509_context().await),
    );
    res.insert(
        "FetchX509Bundles".into(),
        outcome(client.fetch_x509_bundles().await),
    );
    res.insert(
        "FetchJWTSVID".into(),
        outcome(client.fetch_jwt_svid([audience], None).await),
    );
    res.insert(
        "FetchJWTBundles".into(),
        outcome(client.fetch_jwt_bundles().await),
    );
    res.insert(
        "ValidateJWTSVID".into(),
        outcome(client.validate_jwt_token(audience, token).await),
    );
    // The source retries PERMISSION_DENIED at start-up (by design), so it can only time out.
    let source = X509Source::builder()
        .initial_sync_timeout(Duration::from_secs(2))
        .build()
        .await;
    let source_error = match &source {
        Ok(_) => None,
        Err(e) => Some(
            format!("{e:?}")
                .split(['(', ' ', '{'])
                .next()
                .unwrap_or("")
                .to_owned(),
        ),
    };
    if let Ok(s) = source {
        s.shutdown().await;
    }
    Ok(json!({ "ok": true, "calls": Value::Object(res), "x509_source_error": source_error }))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| -> String {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
            .unwrap_or_default()
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("interop: FAILED: tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async {
        let work = async {
            match args.first().map(String::as_str) {
                Some("check") => check(&flag("--expect-id"), &flag("--audience")).await,
                Some("denied") => denied(&flag("--audience"), &flag("--token")).await,
                Some("no-header") => raw::no_header(&flag("--audience")).await,
                _ => Err(fail("setup", "usage: rust-spiffe-interop check|denied|no-header [--expect-id ID] --audience AUD [--token JWT]")),
            }
        };
        tokio::time::timeout(Duration::from_secs(60), work)
            .await
            .unwrap_or_else(|_| Err(fail("timeout", "no answer within 60 s")))
    });
    match result {
        Ok(v) => {
            println!("{v}");
            ExitCode::SUCCESS
        }
        Err(f) => {
            println!(
                "{}",
                json!({ "ok": false, "step": f.step, "error": f.error })
            );
            eprintln!("interop: FAILED at {}: {}", f.step, f.error);
            ExitCode::FAILURE
        }
    }
}
