//! Raw gRPC calls to the Workload API with tonic, bypassing the spiffe crate:
//! the crate always adds the `workload.spiffe.io: true` security header, so
//! only a client of our own can leave it out.
//!
//! The messages are declared by hand with prost's derive (no protoc, no
//! build.rs), with only the fields this program reads or sends; prost skips
//! the fields a response has and the declaration lacks.

use std::collections::HashMap;

use hyper_util::rt::TokioIo;
use serde_json::{json, Map, Value};
use tokio::net::UnixStream;
use tonic::client::Grpc;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint, Uri};
use tonic::{Request, Status};
use tonic_prost::ProstCodec;

use crate::{fail, Failure};

/// X509SVIDRequest, X509BundlesRequest and JWTBundlesRequest (no fields), and
/// any response whose content does not matter.
#[derive(Clone, PartialEq, prost::Message)]
struct Empty {}

/// X509SVIDResponse: only its SVIDs' SPIFFE IDs.
#[derive(Clone, PartialEq, prost::Message)]
struct X509SvidResponse {
    #[prost(message, repeated, tag = "1")]
    svids: Vec<SpiffeIdOnly>,
}

/// X509SVID or JWTSVID, only field 1 (spiffe_id) of either; ValidateJWTSVIDResponse as well.
#[derive(Clone, PartialEq, prost::Message)]
struct SpiffeIdOnly {
    #[prost(string, tag = "1")]
    spiffe_id: String,
}

/// X509BundlesResponse (bundles is field 2) and JWTBundlesResponse (field 1): the trust domains.
#[derive(Clone, PartialEq, prost::Message)]
struct X509BundlesResponse {
    #[prost(map = "string, bytes", tag = "2")]
    bundles: HashMap<String, Vec<u8>>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct JwtBundlesResponse {
    #[prost(map = "string, bytes", tag = "1")]
    bundles: HashMap<String, Vec<u8>>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct JwtSvidRequest {
    #[prost(string, repeated, tag = "1")]
    audience: Vec<String>,
    #[prost(string, tag = "2")]
    spiffe_id: String,
}

/// JWTSVIDResponse: each SVID's SPIFFE ID and token.
#[derive(Clone, PartialEq, prost::Message)]
struct JwtSvidResponse {
    #[prost(message, repeated, tag = "1")]
    svids: Vec<JwtSvid>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct JwtSvid {
    #[prost(string, tag = "1")]
    spiffe_id: String,
    #[prost(string, tag = "2")]
    svid: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ValidateJwtSvidRequest {
    #[prost(string, tag = "1")]
    audience: String,
    #[prost(string, tag = "2")]
    svid: String,
}

const SECURITY_HEADER: &str = "workload.spiffe.io";

// The methods' paths (packages/client/proto/spiffe/workload.proto: package-less service SpiffeWorkloadAPI).
const FETCH_X509_SVID: &str = "/SpiffeWorkloadAPI/FetchX509SVID";
const FETCH_X509_BUNDLES: &str = "/SpiffeWorkloadAPI/FetchX509Bundles";
const FETCH_JWT_SVID: &str = "/SpiffeWorkloadAPI/FetchJWTSVID";
const FETCH_JWT_BUNDLES: &str = "/SpiffeWorkloadAPI/FetchJWTBundles";
const VALIDATE_JWT_SVID: &str = "/SpiffeWorkloadAPI/ValidateJWTSVID";

/// An HTTP/2 channel over the Unix socket of $SPIFFE_ENDPOINT_SOCKET.
async fn connect() -> Result<Channel, Failure> {
    let endpoint = std::env::var("SPIFFE_ENDPOINT_SOCKET")
        .map_err(|_| fail("raw_connect", "SPIFFE_ENDPOINT_SOCKET is not set"))?;
    let path = endpoint
        .strip_prefix("unix://")
        .or_else(|| endpoint.strip_prefix("unix:"))
        .ok_or_else(|| fail("raw_connect", format!("not a unix: address: {endpoint}")))?
        .to_owned();
    // The URI only names the :authority; the connector ignores it and dials the socket.
    Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move { UnixStream::connect(path).await.map(TokioIo::new) }
        }))
        .await
        .map_err(|e| fail("raw_connect", format!("{endpoint}: {e:?}")))
}

fn request<M>(message: M, header: bool) -> Request<M> {
    let mut req = Request::new(message);
    if header {
        req.metadata_mut()
            .insert(SECURITY_HEADER, MetadataValue::from_static("true"));
    }
    req
}

/// A failed call: its gRPC code (as tonic names it, e.g. "InvalidArgument") and message.
fn status_json(s: &Status) -> Value {
    json!({ "code": format!("{:?}", s.code()), "message": s.message() })
}

/// The first message of a server-streaming RPC, or the status it ended with.
/// The status may come with the response headers (a trailers-only answer, the
/// usual way to refuse a call) or after them, as the stream's end: both count.
async fn first<Req, Res>(
    grpc: &mut Grpc<Channel>,
    method: &'static str,
    message: Req,
    header: bool,
) -> Result<Result<Res, Status>, Failure>
where
    Req: prost::Message + Send + Sync + 'static,
    Res: prost::Message + Default + Send + Sync + 'static,
{
    grpc.ready()
        .await
        .map_err(|e| fail("raw_ready", format!("{method}: {e:?}")))?;
    let call = grpc
        .server_streaming(
            request(message, header),
            PathAndQuery::from_static(method),
            ProstCodec::<Req, Res>::default(),
        )
        .await;
    let mut stream = match call {
        Ok(r) => r.into_inner(),
        Err(s) => return Ok(Err(s)),
    };
    // Dropping the stream after its first message cancels the call.
    Ok(match stream.message().await {
        Ok(Some(m)) => Ok(m),
        Ok(None) => Err(Status::unknown("stream ended with OK and no message")),
        Err(s) => Err(s),
    })
}

async fn unary<Req, Res>(
    grpc: &mut Grpc<Channel>,
    method: &'static str,
    message: Req,
    header: bool,
) -> Result<Result<Res, Status>, Failure>
where
    Req: prost::Message + Send + Sync + 'static,
    Res: prost::Message + Default + Send + Sync + 'static,
{
    grpc.ready()
        .await
        .map_err(|e| fail("raw_ready", format!("{method}: {e:?}")))?;
    Ok(grpc
        .unary(
            request(message, header),
            PathAndQuery::from_static(method),
            ProstCodec::<Req, Res>::default(),
        )
        .await
        .map(tonic::Response::into_inner))
}

fn sorted_keys(map: &HashMap<String, Vec<u8>>) -> Vec<String> {
    let mut keys: Vec<String> = map.keys().cloned().collect();
    keys.sort();
    keys
}

/// All five Workload API RPCs over a raw tonic channel: first with the
/// security header (the control: the same path, the same requests, accepted),
/// then without it. The JWT-SVID the control fetched is the one both
/// ValidateJWTSVID calls present, so that only the header differs between the two.
pub async fn no_header(audience: &str) -> Result<Value, Failure> {
    let mut grpc = Grpc::new(connect().await?);
    let jwt_request = || JwtSvidRequest {
        audience: vec![audience.to_owned()],
        spiffe_id: String::new(),
    };

    let mut with = Map::new();
    let x509 = first::<_, X509SvidResponse>(&mut grpc, FETCH_X509_SVID, Empty {}, true).await?;
    with.insert(
        "FetchX509SVID".into(),
        match &x509 {
            Ok(m) => json!({ "code": "Ok", "spiffe_ids": m.svids.iter().map(|s| &s.spiffe_id).collect::<Vec<_>>() }),
            Err(s) => status_json(s),
        },
    );
    let x509_bundles =
        first::<_, X509BundlesResponse>(&mut grpc, FETCH_X509_BUNDLES, Empty {}, true).await?;
    with.insert(
        "FetchX509Bundles".into(),
        match &x509_bundles {
            Ok(m) => json!({ "code": "Ok", "trust_domains": sorted_keys(&m.bundles) }),
            Err(s) => status_json(s),
        },
    );
    let jwt = unary::<_, JwtSvidResponse>(&mut grpc, FETCH_JWT_SVID, jwt_request(), true).await?;
    with.insert(
        "FetchJWTSVID".into(),
        match &jwt {
            Ok(m) => json!({ "code": "Ok", "spiffe_ids": m.svids.iter().map(|s| &s.spiffe_id).collect::<Vec<_>>() }),
            Err(s) => status_json(s),
        },
    );
    let jwt_bundles =
        first::<_, JwtBundlesResponse>(&mut grpc, FETCH_JWT_BUNDLES, Empty {}, true).await?;
    with.insert(
        "FetchJWTBundles".into(),
        match &jwt_bundles {
            Ok(m) => json!({ "code": "Ok", "trust_domains": sorted_keys(&m.bundles) }),
            Err(s) => status_json(s),
        },
    );
    // A caller without an identity gets no JWT-SVID: it presents a placeholder instead.
    let token = jwt
        .ok()
        .and_then(|m| m.svids.into_iter().next())
        .map_or_else(|| "not-a-jwt".to_owned(), |s| s.svid);
    let validate = || ValidateJwtSvidRequest {
        audience: audience.to_owned(),
        svid: token.clone(),
    };
    let validated =
        unary::<_, SpiffeIdOnly>(&mut grpc, VALIDATE_JWT_SVID, validate(), true).await?;
    with.insert(
        "ValidateJWTSVID".into(),
        match &validated {
            Ok(m) => json!({ "code": "Ok", "spiffe_id": m.spiffe_id }),
            Err(s) => status_json(s),
        },
    );

    // The same calls without the header: each must be refused, whatever it asks.
    fn outcome<T>(r: Result<T, Status>) -> Value {
        match r {
            Ok(_) => json!({ "code": "Ok" }),
            Err(s) => status_json(&s),
        }
    }
    let mut without = Map::new();
    without.insert(
        "FetchX509SVID".into(),
        outcome(first::<_, Empty>(&mut grpc, FETCH_X509_SVID, Empty {}, false).await?),
    );
    without.insert(
        "FetchX509Bundles".into(),
        outcome(first::<_, Empty>(&mut grpc, FETCH_X509_BUNDLES, Empty {}, false).await?),
    );
    without.insert(
        "FetchJWTSVID".into(),
        outcome(unary::<_, Empty>(&mut grpc, FETCH_JWT_SVID, jwt_request(), false).await?),
    );
    without.insert(
        "FetchJWTBundles".into(),
        outcome(first::<_, Empty>(&mut grpc, FETCH_JWT_BUNDLES, Empty {}, false).await?),
    );
    without.insert(
        "ValidateJWTSVID".into(),
        outcome(unary::<_, Empty>(&mut grpc, VALIDATE_JWT_SVID, validate(), false).await?),
    );

    Ok(
        json!({ "ok": true, "with_header": Value::Object(with), "no_header": Value::Object(without) }),
    )
}
