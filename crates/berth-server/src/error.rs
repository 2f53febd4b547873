//! Errors as the API returns them: an HTTP status and a JSON body
//! `{code, message, details, error}`, where `code` is the gRPC status code
//! Argo CD's gateway puts there (so its clients read it) and `error` repeats
//! the message as Argo CD's responses do.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// One failed request.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// What went wrong and what to do, for people.
    pub message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    /// 400: the request cannot be carried out as it is.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    /// 401: no valid session or token.
    pub fn unauthenticated(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, message)
    }

    /// 403: authenticated, not allowed.
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    /// 409: the object's state does not allow it now.
    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, message)
    }

    /// 429: too many attempts.
    pub fn too_many(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::TOO_MANY_REQUESTS, message)
    }

    /// 500: the server or the cluster failed.
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    /// 503: what is needed to answer is not running here now.
    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message)
    }

    /// The gRPC code Argo CD's gateway would give.
    pub fn grpc_code(&self) -> u16 {
        match self.status {
            StatusCode::BAD_REQUEST => 3,
            StatusCode::NOT_FOUND => 5,
            StatusCode::CONFLICT => 9,
            StatusCode::FORBIDDEN => 7,
            StatusCode::TOO_MANY_REQUESTS => 8,
            StatusCode::UNAUTHORIZED => 16,
            StatusCode::PAYLOAD_TOO_LARGE => 11,
            StatusCode::REQUEST_TIMEOUT => 4,
            StatusCode::SERVICE_UNAVAILABLE => 14,
            _ => 13,
        }
    }

    /// A Kubernetes API error, named after what was being done.
    pub fn kube(what: &str, e: kube::Error) -> ApiError {
        match e {
            kube::Error::Api(s) if s.code == 404 => {
                ApiError::not_found(format!("{what}: not found"))
            }
            kube::Error::Api(s) if s.code == 409 => {
                ApiError::conflict(format!("{what}: {}", s.message))
            }
            kube::Error::Api(s) if s.code == 403 => ApiError::forbidden(format!(
                "{what}: the server's identity may not do this: {}",
                s.message
            )),
            kube::Error::Api(s) if s.code == 422 || s.code == 400 => {
                ApiError::bad_request(format!("{what}: {}", s.message))
            }
            other => ApiError::internal(format!("{what}: {other}")),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({
            "code": self.grpc_code(),
            "message": self.message,
            "error": self.message,
            "details": [],
        });
        (self.status, Json(body)).into_response()
    }
}
