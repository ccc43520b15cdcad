//! Small pieces of glue between Rust values and the JS side: setting keys on plain objects,
//! reading an AbortSignal, calling `onProgress`, and putting a backend error on one line.

use js_sys::{Function, Object, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use crate::error::{G2dError, Result};

/// A backend error's chain of causes on one line, without its (empty) backtrace.
pub(super) fn one_line(report: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for line in report.lines().map(str::trim) {
        if line.is_empty() || line.starts_with("Caused by") || line.starts_with("Backtrace") {
            continue;
        }
        if line.starts_with("No backtrace") || parts.last() == Some(&line) {
            continue;
        }
        parts.push(line);
    }
    parts.join(": ")
}

pub(super) fn set(object: &Object, key: &str, value: impl Into<JsValue>) {
    Reflect::set(object, &key.into(), &value.into()).expect("set on a plain object");
}

/// Whether `signal` (an AbortSignal, if the caller passed one) has fired.
pub(super) fn aborted(signal: &Option<JsValue>) -> bool {
    signal.as_ref().is_some_and(|s| {
        Reflect::get(s, &"aborted".into())
            .map(|a| a.is_truthy())
            .unwrap_or(false)
    })
}

/// Calls `onProgress(step, total)`, awaits it if it returns a promise, and reports whether the
/// caller asked to stop (by returning `false`).
pub(super) async fn progress(
    callback: &Option<Function>,
    step: usize,
    total: usize,
) -> Result<bool> {
    let Some(f) = callback else {
        return Ok(true);
    };
    let mut value = f
        .call2(
            &JsValue::NULL,
            &(step as u32).into(),
            &(total as u32).into(),
        )
        .map_err(|e| G2dError::config("onProgress", format!("threw {e:?}")))?;
    if value.is_instance_of::<Promise>() {
        value = JsFuture::from(Promise::from(value))
            .await
            .map_err(|e| G2dError::config("onProgress", format!("rejected {e:?}")))?;
    }
    Ok(value != JsValue::FALSE)
}
