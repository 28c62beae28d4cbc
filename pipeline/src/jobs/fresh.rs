//! Whether a source object's outputs are up to date: every output that names it as its source
//! (provenance metadata) was made from its current etag by the function's current spec. A
//! changed object or a changed spec is redone; nothing else is.

use crate::store::provenance::{self, encode_key};
use crate::store::{Head, KeyTemplate, ObjectStore, PageRequest, StoreError};

/// Where a function's outputs go and what its current spec hashes to.
#[derive(Debug, Clone)]
pub struct Target {
    pub bucket: String,
    pub template: KeyTemplate,
    pub spec_hash: String,
}

/// Outputs looked at per source at most: a key frame's folder can hold hundreds, and one
/// stale output among the first says as much as among all.
const MAX_LOOKED_AT: usize = 64;

/// The source object as listed.
pub struct SourceObject<'a> {
    pub bucket: &'a str,
    pub key: &'a str,
    pub etag: &'a str,
}

/// Up to date: at least one output of this source made by the current spec, and every such
/// output made from `etag`. Outputs an older spec made (under keys the current one no longer
/// writes) are left out of it.
pub async fn up_to_date(
    store: &dyn ObjectStore,
    target: &Target,
    function: &str,
    source: &SourceObject<'_>,
) -> Result<bool, StoreError> {
    let (prefix, exact) = target.template.known_prefix(source.bucket, source.key);
    let keys: Vec<String> = if exact {
        vec![prefix]
    } else {
        let request = PageRequest {
            prefix,
            start_after: None,
            max: MAX_LOOKED_AT,
        };
        let page = store.list(&target.bucket, &request).await?;
        page.objects.into_iter().map(|o| o.key).collect()
    };
    let mut found = false;
    for key in keys {
        let head = match store.head(&target.bucket, &key).await {
            Ok(h) => h,
            Err(e) if e.kind() == crate::store::StoreErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        match verdict(&head, target, function, source) {
            Verdict::Other => {}
            Verdict::Current => found = true,
            Verdict::Stale => return Ok(false),
        }
    }
    Ok(found)
}

#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// Made from another source (a template without `{key}` shares a folder), by another
    /// function, or by an older spec of this one.
    Other,
    Current,
    Stale,
}

/// What one output's provenance says about `source`.
fn verdict(head: &Head, target: &Target, function: &str, source: &SourceObject<'_>) -> Verdict {
    let m = &head.metadata;
    let get = |k: &str| m.get(k).map(String::as_str).unwrap_or_default();
    if get(provenance::SOURCE_BUCKET) != source.bucket
        || get(provenance::SOURCE_KEY) != encode_key(source.key)
        || get(provenance::FUNCTION) != function
        || get(provenance::SPEC_HASH) != target.spec_hash
    {
        return Verdict::Other;
    }
    if get(provenance::SOURCE_ETAG) == source.etag.trim_matches('"') {
        Verdict::Current
    } else {
        Verdict::Stale
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ObjectInfo;
    use crate::store::provenance::Provenance;

    fn head(key: &str, etag: &str, function: &str, hash: &str) -> Head {
        Head {
            info: ObjectInfo {
                key: "out".into(),
                size: 1,
                etag: "x".into(),
                modified_ms: 0,
            },
            content_type: None,
            metadata: Provenance {
                bucket: "up",
                key,
                etag,
                function,
                spec_hash: hash,
            }
            .metadata(),
        }
    }

    #[test]
    fn only_the_current_specs_outputs_of_this_source_count() {
        let target = Target {
            bucket: "out".into(),
            template: KeyTemplate::parse("t/{key}/{size}.jpg", &["size"]).unwrap(),
            spec_hash: "h1".into(),
        };
        let source = SourceObject {
            bucket: "up",
            key: "a b.jpg",
            etag: "\"e1\"",
        };
        let v = |h: &Head| verdict(h, &target, "thumbs", &source);
        assert_eq!(v(&head("a b.jpg", "e1", "thumbs", "h1")), Verdict::Current);
        assert_eq!(v(&head("a b.jpg", "e2", "thumbs", "h1")), Verdict::Stale);
        assert_eq!(
            v(&head("a b.jpg", "e1", "thumbs", "h0")),
            Verdict::Other,
            "an older spec's output does not count"
        );
        assert_eq!(v(&head("a.jpg", "e1", "thumbs", "h1")), Verdict::Other);
        assert_eq!(v(&head("a b.jpg", "e1", "labels", "h1")), Verdict::Other);
        let mut bare = head("a b.jpg", "e1", "thumbs", "h1");
        bare.metadata.clear();
        assert_eq!(v(&bare), Verdict::Other, "not made by Weir");
    }
}
