//! Dead letters for operators (`weir dead-letters`): `GET /v1/dead-letters`
//! (`?limit=&after=&function=`, newest first) and `GET /v1/dead-letters/{id}` show what was given
//! up on and why; `POST /v1/dead-letters/{id}/retry` and `POST /v1/dead-letters/retry`
//! (`?function=`) send the events again through the current spec; `DELETE
//! /v1/dead-letters/{id}` and `DELETE /v1/dead-letters` (`?function=`) remove them.

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{Shared, error};
use crate::bus::{BusError, DeadLetter, async_lane, job_lane};

/// Letters read per page while retrying or purging them all.
const PAGE: usize = 1000;

struct Query {
    limit: usize,
    after: Option<u64>,
    function: Option<String>,
}

/// The query's parameters, or why they are wrong (a 400).
fn query(raw: Option<&str>, allowed: &[&str]) -> Result<Query, String> {
    let mut q = Query {
        limit: 100,
        after: None,
        function: None,
    };
    for pair in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let parsed = match pair.split_once('=') {
            Some((k, _)) if !allowed.contains(&k) => false,
            Some(("limit", v)) => v.parse().map(|n: usize| q.limit = n.clamp(1, 1000)).is_ok(),
            Some(("after", v)) => v.parse().map(|n: u64| q.after = Some(n)).is_ok(),
            Some(("function", v)) if !v.is_empty() => {
                q.function = Some(v.to_string());
                true
            }
            _ => false,
        };
        if !parsed {
            let reason = format!(
                "bad query parameter {pair:?}: use {}",
                allowed
                    .iter()
                    .map(|k| format!("{k}=…"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            return Err(reason);
        }
    }
    Ok(q)
}

fn bus_error(e: &BusError) -> Response {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        e.to_string(),
    )
}

/// A letter's id from the path, or why it names none (a 404).
fn letter_id(text: &str) -> Result<u64, String> {
    text.parse()
        .map_err(|_| format!("no dead letter {text:?}: ids are numbers"))
}

fn no_letter(id: u64) -> Response {
    error(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no dead letter {id}"),
    )
}

/// Letters newest first from `after` (exclusive), `function`'s only when given, `limit` at most.
async fn letters(st: &Shared, q: &Query) -> Result<Vec<DeadLetter>, BusError> {
    let Some(ev) = &st.events else {
        return Ok(Vec::new());
    };
    let (mut out, mut before) = (Vec::new(), q.after);
    loop {
        let page = ev.bus.dead_letters(PAGE, before).await?;
        let last = page.last().map(|l| l.id);
        let wanted = |l: &DeadLetter| q.function.as_ref().is_none_or(|f| *f == l.function);
        out.extend(page.into_iter().filter(wanted));
        if out.len() >= q.limit || last.is_none() {
            out.truncate(q.limit);
            return Ok(out);
        }
        before = last;
    }
}

pub async fn list(State(st): State<Shared>, RawQuery(raw): RawQuery) -> Response {
    let q = match query(raw.as_deref(), &["limit", "after", "function"]) {
        Ok(q) => q,
        Err(reason) => return error(StatusCode::BAD_REQUEST, "bad_request", reason),
    };
    match letters(&st, &q).await {
        Ok(items) => Json(json!({ "items": items })).into_response(),
        Err(e) => bus_error(&e),
    }
}

pub async fn show(State(st): State<Shared>, Path(id): Path<String>) -> Response {
    let id = match letter_id(&id) {
        Ok(id) => id,
        Err(reason) => return error(StatusCode::NOT_FOUND, "not_found", reason),
    };
    let Some(ev) = &st.events else {
        return no_letter(id);
    };
    match ev.bus.dead_letter_by_id(id).await {
        Ok(Some(letter)) => Json(json!(letter)).into_response(),
        Ok(None) => no_letter(id),
        Err(e) => bus_error(&e),
    }
}

/// The queue a retried letter goes to: an asynchronous invoke to its function's `~async` lane;
/// a reprocess job's pair, or a function no storage trigger feeds, to the function's jobs' lane
/// (behind live work); others to the function's own queue; none when this server does not run
/// the function.
fn queue_for(st: &Shared, letter: &DeadLetter) -> Option<String> {
    let (ev, function) = (st.events.as_ref()?, letter.function.as_str());
    // An asynchronous invoke goes back to its lane, which every function has.
    if letter.event.as_ref().is_some_and(|e| e.request.is_some()) {
        return st
            .pools
            .contains_key(function)
            .then(|| async_lane(function));
    }
    let from_job = letter
        .event
        .as_ref()
        .is_some_and(|e| e.source == crate::jobs::SOURCE);
    let live = ev.routes.iter().any(|(f, _)| f == function);
    if live && !from_job {
        return Some(function.to_string());
    }
    let jobs = st.jobs.as_ref()?;
    jobs.runs(function).then(|| job_lane(function))
}

/// Send one letter's event again and remove the letter; `Ok(false)` when no consumer here runs
/// its function (the letter stays). Published first: a failure between the two leaves the
/// letter to be retried again, never an event lost.
async fn retry(st: &Shared, letter: &DeadLetter) -> Result<bool, BusError> {
    let (Some(ev), Some(queue)) = (&st.events, queue_for(st, letter)) else {
        return Ok(false);
    };
    ev.bus.publish(letter.retried(), vec![queue]).await?;
    ev.bus.remove_dead_letters(&[letter.id]).await?;
    Ok(true)
}

pub async fn retry_one(State(st): State<Shared>, Path(id): Path<String>) -> Response {
    let id = match letter_id(&id) {
        Ok(id) => id,
        Err(reason) => return error(StatusCode::NOT_FOUND, "not_found", reason),
    };
    let Some(ev) = &st.events else {
        return no_letter(id);
    };
    let letter = match ev.bus.dead_letter_by_id(id).await {
        Ok(Some(l)) => l,
        Ok(None) => return no_letter(id),
        Err(e) => return bus_error(&e),
    };
    match retry(&st, &letter).await {
        Ok(true) => Json(json!({ "retried": 1, "left": 0 })).into_response(),
        Ok(false) => error(
            StatusCode::CONFLICT,
            "conflict",
            format!(
                "function {} takes no events on this server (not in its config, or without an \
                 output or a storage trigger); the dead letter stays",
                letter.function
            ),
        ),
        Err(e) => bus_error(&e),
    }
}

/// Every letter (of `?function=`): retried, or removed.
async fn each(st: &Shared, raw: Option<&str>, retrying: bool) -> Response {
    let q = match query(raw, &["function"]) {
        Ok(q) => Query {
            limit: usize::MAX,
            ..q
        },
        Err(reason) => return error(StatusCode::BAD_REQUEST, "bad_request", reason),
    };
    let all = match letters(st, &q).await {
        Ok(all) => all,
        Err(e) => return bus_error(&e),
    };
    let (mut done, mut left) = (0u64, 0u64);
    if retrying {
        for letter in &all {
            match retry(st, letter).await {
                Ok(true) => done += 1,
                Ok(false) => left += 1,
                Err(e) => return bus_error(&e),
            }
        }
        return Json(json!({ "retried": done, "left": left })).into_response();
    }
    let Some(ev) = &st.events else {
        return Json(json!({ "purged": 0 })).into_response();
    };
    for chunk in all.chunks(PAGE) {
        let ids: Vec<u64> = chunk.iter().map(|l| l.id).collect();
        match ev.bus.remove_dead_letters(&ids).await {
            Ok(n) => done += n,
            Err(e) => return bus_error(&e),
        }
    }
    Json(json!({ "purged": done })).into_response()
}

pub async fn retry_all(State(st): State<Shared>, RawQuery(raw): RawQuery) -> Response {
    each(&st, raw.as_deref(), true).await
}

pub async fn purge(State(st): State<Shared>, RawQuery(raw): RawQuery) -> Response {
    each(&st, raw.as_deref(), false).await
}

pub async fn remove_one(State(st): State<Shared>, Path(id): Path<String>) -> Response {
    let id = match letter_id(&id) {
        Ok(id) => id,
        Err(reason) => return error(StatusCode::NOT_FOUND, "not_found", reason),
    };
    let Some(ev) = &st.events else {
        return no_letter(id);
    };
    match ev.bus.remove_dead_letters(&[id]).await {
        Ok(0) => no_letter(id),
        Ok(_) => Json(json!({ "purged": 1 })).into_response(),
        Err(e) => bus_error(&e),
    }
}
