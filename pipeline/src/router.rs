//! Which functions an event is for (DESIGN.md step 3), and the recursion guard: a function whose
//! own outputs would match its trigger is refused when the config loads.
//!
//! Event names match exactly or by a trailing `*` (`s3:ObjectCreated:*`); prefixes match as
//! written (keys are case-sensitive); suffixes match in any case (`.JPG` is a `.jpg`).

use crate::config::{OutputSpec, S3Trigger};
use crate::events::Event;

pub fn name_matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(stem) => name.starts_with(stem),
        None => pattern == name,
    }
}

fn ends_with_ignore_case(text: &str, suffix: &str) -> bool {
    text.len() >= suffix.len()
        && text.is_char_boundary(text.len() - suffix.len())
        && text[text.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
}

/// Whether `event` is one that `trigger` asks for.
pub fn matches(trigger: &S3Trigger, event: &Event) -> bool {
    let key = &event.object.key;
    trigger.bucket == event.object.bucket
        && trigger.events.iter().any(|p| name_matches(p, &event.name))
        && trigger.prefix.as_deref().is_none_or(|p| key.starts_with(p))
        && (trigger.suffix.is_empty()
            || trigger.suffix.iter().any(|s| ends_with_ignore_case(key, s)))
}

/// Whether a key made from `output.key` (a template with `{key}`, `{size}`…) in `output.bucket`
/// could match `trigger`. Conservative: a variable may stand for anything.
pub fn could_trigger_itself(trigger: &S3Trigger, output: &OutputSpec) -> bool {
    if trigger.bucket != output.bucket {
        return false;
    }
    let t = &output.key;
    let (head, tail, has_vars) = match (t.find('{'), t.rfind('}')) {
        (Some(open), Some(close)) => (&t[..open], &t[close + 1..], true),
        _ => (t.as_str(), t.as_str(), false),
    };
    let prefix_ok = trigger.prefix.as_deref().is_none_or(|p| {
        if has_vars {
            head.starts_with(p) || p.starts_with(head)
        } else {
            head.starts_with(p)
        }
    });
    let suffix_ok = trigger.suffix.is_empty()
        || tail.is_empty() && has_vars
        || trigger.suffix.iter().any(|s| {
            ends_with_ignore_case(tail, s) || (has_vars && ends_with_ignore_case(s, tail))
        });
    prefix_ok && suffix_ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::ObjectRef;

    fn trigger(prefix: Option<&str>, suffix: &[&str]) -> S3Trigger {
        S3Trigger {
            bucket: "uploads".into(),
            events: vec!["s3:ObjectCreated:*".into()],
            prefix: prefix.map(str::to_string),
            suffix: suffix.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn event(bucket: &str, name: &str, key: &str) -> Event {
        let object = ObjectRef {
            bucket: bucket.into(),
            key: key.into(),
            size: None,
            etag: None,
            version: None,
        };
        Event {
            id: "1".into(),
            source: "aws:s3".into(),
            time: String::new(),
            name: name.into(),
            object,
            ..Default::default()
        }
    }

    #[test]
    fn events_match_on_bucket_name_prefix_and_suffix_in_any_case() {
        let t = trigger(Some("images/"), &[".jpg", ".png"]);
        assert!(matches(
            &t,
            &event("uploads", "s3:ObjectCreated:Put", "images/cat.jpg")
        ));
        assert!(matches(
            &t,
            &event(
                "uploads",
                "s3:ObjectCreated:CompleteMultipartUpload",
                "images/CAT.JPG"
            )
        ));
        assert!(
            !matches(
                &t,
                &event("derived", "s3:ObjectCreated:Put", "images/cat.jpg")
            ),
            "bucket"
        );
        assert!(
            !matches(
                &t,
                &event("uploads", "s3:ObjectRemoved:Delete", "images/cat.jpg")
            ),
            "event"
        );
        assert!(
            !matches(
                &t,
                &event("uploads", "s3:ObjectCreated:Put", "Images/cat.jpg")
            ),
            "prefix case"
        );
        assert!(
            !matches(
                &t,
                &event("uploads", "s3:ObjectCreated:Put", "images/cat.gif")
            ),
            "suffix"
        );
        assert!(matches(
            &trigger(None, &[]),
            &event("uploads", "s3:ObjectCreated:Copy", "é/x")
        ));
        assert!(
            !matches(
                &trigger(None, &[".jpg"]),
                &event("uploads", "s3:ObjectCreated:Put", "é")
            ),
            "short key"
        );
        assert!(
            name_matches("*", "anything")
                && !name_matches("s3:ObjectCreated:Put", "s3:ObjectCreated:Copy")
        );
    }

    #[test]
    fn outputs_that_would_feed_their_own_trigger_are_caught() {
        let out = |bucket: &str, key: &str| OutputSpec {
            bucket: bucket.into(),
            key: key.into(),
        };
        let t = trigger(Some("images/"), &[".jpg"]);
        assert!(
            !could_trigger_itself(&t, &out("derived", "thumbs/{key}/{size}.jpg")),
            "other bucket"
        );
        assert!(
            !could_trigger_itself(&t, &out("uploads", "thumbs/{key}/{size}.jpg")),
            "other prefix"
        );
        assert!(
            could_trigger_itself(&t, &out("uploads", "images/small/{key}.jpg")),
            "same prefix and suffix"
        );
        assert!(
            could_trigger_itself(&t, &out("uploads", "{key}.JPG")),
            "a variable may hold the prefix"
        );
        assert!(
            !could_trigger_itself(&t, &out("uploads", "images/{key}.json")),
            "another suffix"
        );
        assert!(
            could_trigger_itself(&t, &out("uploads", "images/{key}")),
            "ends in a variable"
        );
        assert!(
            could_trigger_itself(&trigger(None, &[]), &out("uploads", "labels.json")),
            "no filter at all"
        );
    }
}
