//! Every `ProcessingResponse` the router sends Envoy, built in one place: the routing answer
//! (destination metadata and context headers), OpenWhisk-shaped immediate answers, the
//! "hold on longer" message, and the plain "continue" replies for each phase.
//!
//! Nothing here decides anything; the stream (`stream.rs`) picks which answer to give.

use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::{
    HeaderMap, HeaderValueOption, header_value_option::HeaderAppendAction,
};
use envoy_types::pb::envoy::extensions::filters::http::ext_proc::v3::{
    ProcessingMode, processing_mode::BodySendMode,
};
use envoy_types::pb::envoy::service::ext_proc::v3::{
    BodyResponse, CommonResponse, HeaderMutation, HeadersResponse, ImmediateResponse,
    ProcessingResponse, TrailersResponse, processing_response::Response as P,
};
use envoy_types::pb::envoy::r#type::v3::HttpStatus;
use envoy_types::pb::google::protobuf::{self, Struct, Value, value::Kind};

use crate::domain::pipeline::Admission;
use crate::domain::rejection::{Rejection, WWW_AUTHENTICATE};
use crate::domain::web::result::WebResponse;
use crate::envoy::headers::{CONTEXT_PREFIX, raw};
use crate::upstream::client::ProxyAnswer;
use crate::upstream::context::context_headers;
use whisk_vocab::token::CONTAINER_TOKEN_HEADER;

/// The dynamic-metadata namespace Envoy's `ORIGINAL_DST` cluster reads `dst` from.
pub const METADATA_NAMESPACE: &str = "whisk.router";
/// Header carrying the activation id back to the client.
pub const ACTIVATION_ID_HEADER: &str = "x-openwhisk-activation-id";

fn of(r: P) -> ProcessingResponse {
    ProcessingResponse {
        response: Some(r),
        ..Default::default()
    }
}

/// Request headers go on unchanged.
pub fn continue_request_headers() -> ProcessingResponse {
    of(P::RequestHeaders(HeadersResponse::default()))
}

/// A request body chunk goes on unchanged.
pub fn continue_request_body() -> ProcessingResponse {
    of(P::RequestBody(BodyResponse::default()))
}

/// A response body chunk goes on unchanged.
pub fn continue_response_body() -> ProcessingResponse {
    of(P::ResponseBody(BodyResponse::default()))
}

pub fn continue_request_trailers() -> ProcessingResponse {
    of(P::RequestTrailers(TrailersResponse::default()))
}

pub fn continue_response_trailers() -> ProcessingResponse {
    of(P::ResponseTrailers(TrailersResponse::default()))
}

/// Asks Envoy to send the request body: whole with the next message, or (`streamed`, for a body
/// of unknown size) chunk by chunk, each held until the router answers it.
pub fn with_request_body(mut reply: ProcessingResponse, streamed: bool) -> ProcessingResponse {
    let mode = if streamed {
        BodySendMode::Streamed
    } else {
        BodySendMode::Buffered
    };
    reply.mode_override = Some(ProcessingMode {
        request_body_mode: mode as i32,
        ..Default::default()
    });
    reply
}

/// Asks Envoy for the request body whole, or — when it is larger than Envoy's buffer — for the
/// part that fits (`end_of_stream` false), so a body too large to hold is refused at once
/// instead of stalling the upload.
pub fn with_bounded_request_body(mut reply: ProcessingResponse) -> ProcessingResponse {
    reply.mode_override = Some(ProcessingMode {
        request_body_mode: BodySendMode::BufferedPartial as i32,
        ..Default::default()
    });
    reply
}

/// Asks Envoy to send the response body, whole, with the next message.
pub fn with_response_body(mut reply: ProcessingResponse) -> ProcessingResponse {
    reply.mode_override = Some(ProcessingMode {
        response_body_mode: BodySendMode::Buffered as i32,
        ..Default::default()
    });
    reply
}

/// A routing answer given at request headers, moved to the body reply (the route was decided at
/// the headers, but the router had to read the body first).
pub fn route_at_body(route: ProcessingResponse) -> ProcessingResponse {
    let common = match route.response {
        Some(P::RequestHeaders(h)) => h.response,
        _ => None,
    };
    ProcessingResponse {
        response: Some(P::RequestBody(BodyResponse { response: common })),
        dynamic_metadata: route.dynamic_metadata,
        ..Default::default()
    }
}

/// Asks Envoy to wait longer than its per-message timeout for the next answer.
pub fn hold_for(d: Duration) -> ProcessingResponse {
    ProcessingResponse {
        override_message_timeout: Some(protobuf::Duration {
            seconds: d.as_secs() as i64,
            nanos: d.subsec_nanos() as i32,
        }),
        ..Default::default()
    }
}

/// Sends the request to the admitted container (its address as dynamic metadata for Envoy's
/// `ORIGINAL_DST` cluster) with the context headers and the container's token; context headers
/// the client sent are removed.
pub fn route(
    map: &HeaderMap,
    admission: &Admission,
    transaction_id: &str,
    traceparent: Option<String>,
) -> ProcessingResponse {
    let mut set_headers: Vec<_> = context_headers(&admission.invocation, transaction_id)
        .into_iter()
        .map(|(k, v)| raw(k, v))
        .collect();
    // With tracing on, the container's span is a child of the router's.
    if let Some(tp) = traceparent {
        set_headers.push(raw("traceparent", tp));
    }
    // The container's proxy runs only what carries its token: set from the table, overwriting
    // whatever a client sent under that name (an `x-whisk-` header, so never passed through).
    set_headers.push(raw(
        CONTAINER_TOKEN_HEADER,
        admission.slot.endpoint().token.expose(),
    ));
    let remove_headers = map
        .headers
        .iter()
        .filter(|h| h.key.starts_with(CONTEXT_PREFIX))
        .filter(|h| {
            !set_headers
                .iter()
                .any(|s| s.header.as_ref().is_some_and(|sh| sh.key == h.key))
        })
        .map(|h| h.key.clone())
        .collect();
    let dst = Struct {
        fields: [(
            "dst".to_owned(),
            Value {
                kind: Some(Kind::StringValue(
                    admission.slot.endpoint().address.to_string(),
                )),
            },
        )]
        .into(),
    };
    let metadata = Struct {
        fields: [(
            METADATA_NAMESPACE.to_owned(),
            Value {
                kind: Some(Kind::StructValue(dst)),
            },
        )]
        .into(),
    };
    ProcessingResponse {
        response: Some(P::RequestHeaders(HeadersResponse {
            response: Some(CommonResponse {
                header_mutation: Some(HeaderMutation {
                    set_headers,
                    remove_headers,
                }),
                ..Default::default()
            }),
        })),
        dynamic_metadata: Some(metadata),
        ..Default::default()
    }
}

/// The container's answer goes on, with the activation id added.
pub fn response_headers(activation_id: Option<&str>) -> ProcessingResponse {
    let set_headers = activation_id
        .map(|id| vec![raw(ACTIVATION_ID_HEADER, id)])
        .unwrap_or_default();
    of(P::ResponseHeaders(HeadersResponse {
        response: Some(CommonResponse {
            header_mutation: Some(HeaderMutation {
                set_headers,
                remove_headers: vec![],
            }),
            ..Default::default()
        }),
    }))
}

/// An immediate JSON answer carrying the activation id.
pub fn json(status: u16, body: impl Into<Vec<u8>>, id: &str) -> ProcessingResponse {
    of(P::ImmediateResponse(ImmediateResponse {
        status: Some(HttpStatus {
            code: status as i32,
        }),
        headers: Some(HeaderMutation {
            set_headers: vec![
                raw("content-type", "application/json"),
                raw(ACTIVATION_ID_HEADER, id),
            ],
            remove_headers: vec![],
        }),
        body: body.into(),
        details: "whisk_router_answered".to_owned(),
        ..Default::default()
    }))
}

/// A web action's answer, as the action shaped it. Header names are lowercased, a repeated name
/// is sent repeatedly (cookies), and what Envoy must own (framing, pseudo-headers) or could not
/// send is dropped. `id`: the activation, when one ran.
pub fn web(response: WebResponse, id: &str) -> ProcessingResponse {
    const FRAMING: [&str; 5] = [
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "upgrade",
    ];
    let mut set_headers: Vec<HeaderValueOption> = response
        .headers
        .into_iter()
        .filter_map(|(k, v)| {
            let k = k.to_ascii_lowercase();
            let name_ok = !k.is_empty()
                && k.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
                && !FRAMING.contains(&k.as_str());
            let value_ok = !v.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0);
            (name_ok && value_ok).then(|| {
                // ext_proc's header mutations read the (deprecated) `append` flag, not
                // `append_action`: without it a repeated name keeps only its last value.
                let mut h = raw(&k, v);
                h.append_action = HeaderAppendAction::AppendIfExistsOrAdd as i32;
                #[allow(deprecated)]
                {
                    h.append = Some(protobuf::BoolValue { value: true });
                }
                h
            })
        })
        .collect();
    if !id.is_empty() {
        set_headers.push(raw(ACTIVATION_ID_HEADER, id));
    }
    of(P::ImmediateResponse(ImmediateResponse {
        status: Some(HttpStatus {
            code: response.status as i32,
        }),
        headers: Some(HeaderMutation {
            set_headers,
            remove_headers: vec![],
        }),
        body: response.body,
        details: "whisk_router_web".to_owned(),
        ..Default::default()
    }))
}

/// OpenWhisk's `202 {"activationId": …}`.
pub fn accepted(id: &str) -> ProcessingResponse {
    let body = serde_json::json!({ "activationId": id }).to_string();
    json(202, body, id)
}

/// A container proxy's answer to a call the router made itself, passed on as it is.
pub fn proxy_answer(answer: &ProxyAnswer, id: &str) -> ProcessingResponse {
    let mut reply = json(answer.status, answer.body.to_vec(), id);
    if let Some(P::ImmediateResponse(r)) = reply.response.as_mut()
        && let Some(headers) = r.headers.as_mut()
    {
        if let Some(cc) = &answer.cache_control {
            headers.set_headers.push(raw("cache-control", cc.as_str()));
        }
        if let Some(retry) = answer.retry_after {
            headers
                .set_headers
                .push(raw("retry-after", retry.as_secs().max(1).to_string()));
        }
    }
    reply
}

/// An OpenWhisk-shaped "no" straight from Envoy.
pub fn rejection(r: &Rejection, transaction_id: &str) -> ProcessingResponse {
    let mut headers = vec![raw("content-type", "application/json")];
    if r.status() == 401 {
        headers.push(raw("www-authenticate", WWW_AUTHENTICATE));
    }
    if let Some(secs) = r.retry_after_secs() {
        headers.push(raw("retry-after", secs.to_string()));
    }
    of(P::ImmediateResponse(ImmediateResponse {
        status: Some(HttpStatus {
            code: r.status() as i32,
        }),
        headers: Some(HeaderMutation {
            set_headers: headers,
            remove_headers: vec![],
        }),
        body: r.body(transaction_id).into_bytes(),
        details: format!("whisk_router_{}", r.reason()),
        ..Default::default()
    }))
}
