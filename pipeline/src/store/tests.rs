use super::*;

fn store() -> (tempfile::TempDir, LocalStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::open(&dir.path().join("objects")).unwrap();
    store.create_bucket("uploads").unwrap();
    (dir, store)
}

fn written(store: &LocalStore, bytes: &[u8]) -> Written {
    use s3s::crypto::Checksum;
    let blob = store.incoming();
    std::fs::write(&blob.path, bytes).unwrap();
    Written {
        blob,
        size: bytes.len() as u64,
        md5_hex: hex(s3s::crypto::Md5::checksum(bytes)),
        checksums: Checksums::default(),
    }
}

#[test]
fn put_get_list_and_limits() {
    let (_d, store) = store();
    store.put("uploads", "a/b/cat 1+2.jpg", b"meow").unwrap();
    store.put("uploads", "a/b/cat 1+2.jpg", b"meow!").unwrap();
    store.put("uploads", "z.txt", b"z").unwrap();
    assert_eq!(
        store.get("uploads", "a/b/cat 1+2.jpg", 100).unwrap(),
        b"meow!"
    );
    assert_eq!(
        store.list("uploads", "").unwrap(),
        ["a/b/cat 1+2.jpg", "z.txt"]
    );
    assert_eq!(store.list("uploads", "a/").unwrap(), ["a/b/cat 1+2.jpg"]);
    assert!(matches!(
        store.get("uploads", "a/b/cat 1+2.jpg", 3),
        Err(StoreError::TooLarge { size: 5, .. })
    ));
    assert!(matches!(
        store.get("uploads", "nope", 3),
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.get("uploads", "a/b", 3),
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.get("nobucket", "k", 3),
        Err(StoreError::NoSuchBucket(_))
    ));
}

#[test]
fn keys_that_are_prefixes_of_each_other_and_long_segments_coexist() {
    let (_d, store) = store();
    let long = "k".repeat(1024);
    let keys = [
        "a",
        "a/b",
        "photos/",
        "photos/x.jpg",
        "../x",
        "a//b",
        "/lead",
        long.as_str(),
    ];
    for (i, k) in keys.iter().enumerate() {
        store.put("uploads", k, format!("{i}").as_bytes()).unwrap();
    }
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(
            store.get("uploads", k, 10).unwrap(),
            format!("{i}").as_bytes(),
            "{k}"
        );
    }
    let mut want: Vec<&str> = keys.to_vec();
    want.sort();
    assert_eq!(store.list("uploads", "").unwrap(), want);
    assert!(store.put("uploads", &"k".repeat(1025), b"x").is_err());
    assert!(store.put("uploads", "a\u{1}b", b"x").is_err());
    // Nothing but the index and the blob folders under the root: no key became a path.
    let names: Vec<String> = std::fs::read_dir(store.root())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().all(|n| n.starts_with('.') || n == "uploads"),
        "{names:?}"
    );
}

#[test]
fn a_failed_condition_leaves_the_old_object_and_no_blob_behind() {
    let (_d, store) = store();
    store.put("uploads", "k", b"old").unwrap();
    let cond = PutCondition {
        if_none_match_any: true,
        ..PutCondition::default()
    };
    let w = written(&store, b"new");
    let r = store.commit("uploads", "k", w, ObjectHeaders::default(), &cond);
    assert!(matches!(r, Err(StoreError::PreconditionFailed(_))));
    assert_eq!(store.get("uploads", "k", 10).unwrap(), b"old");
    let blobs = count_files(&store.root().join("uploads"));
    assert_eq!(blobs, 1, "the refused blob is removed");
    // Replacing and deleting remove the blobs they supersede.
    store.put("uploads", "k", b"newer").unwrap();
    assert_eq!(count_files(&store.root().join("uploads")), 1);
    store.delete("uploads", "k").unwrap();
    store.delete("uploads", "k").unwrap();
    assert_eq!(count_files(&store.root().join("uploads")), 0);
}

fn count_files(dir: &std::path::Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| {
            if e.path().is_dir() {
                count_files(&e.path())
            } else {
                1
            }
        })
        .sum()
}

#[test]
fn buckets_with_objects_or_uploads_are_not_deleted() {
    let (_d, store) = store();
    store.put("uploads", "k", b"x").unwrap();
    assert!(matches!(
        store.delete_bucket("uploads"),
        Err(StoreError::BucketNotEmpty(_))
    ));
    store.delete("uploads", "k").unwrap();
    let id = store
        .create_upload("uploads", "big", ObjectHeaders::default(), None)
        .unwrap();
    assert!(matches!(
        store.delete_bucket("uploads"),
        Err(StoreError::BucketNotEmpty(_))
    ));
    store.abort_upload(&id, "uploads", "big").unwrap();
    store.delete_bucket("uploads").unwrap();
    assert!(!store.bucket_exists("uploads").unwrap());
    assert!(matches!(
        store.delete_bucket("uploads"),
        Err(StoreError::NoSuchBucket(_))
    ));
}

#[test]
fn multipart_follows_s3() {
    let (_d, store) = store();
    let big = vec![7u8; MIN_PART_SIZE as usize];
    let id = store
        .create_upload("uploads", "v.mp4", ObjectHeaders::default(), None)
        .unwrap();
    assert!(matches!(
        store.put_part(&id, "uploads", "v.mp4", 0, written(&store, b"x")),
        Err(StoreError::InvalidArgument(_))
    ));
    assert!(matches!(
        store.put_part(&id, "uploads", "other", 1, written(&store, b"x")),
        Err(StoreError::NoSuchUpload(_))
    ));
    let p1 = store
        .put_part(&id, "uploads", "v.mp4", 1, written(&store, &big))
        .unwrap();
    let p3 = store
        .put_part(&id, "uploads", "v.mp4", 3, written(&store, b"tail"))
        .unwrap();
    let part = |n: u32, etag: &str| CompletedPart {
        number: n,
        etag: format!("\"{etag}\""),
        checksums: Checksums::default(),
    };
    let refusals = [
        vec![part(3, &p3.etag), part(1, &p1.etag)],
        vec![part(1, &p1.etag), part(2, &p1.etag)],
        vec![part(1, "0123"), part(3, &p3.etag)],
        vec![part(3, &p3.etag), part(4, &p3.etag)],
        vec![],
    ];
    for listed in &refusals {
        assert!(
            store
                .complete_upload(&id, "uploads", "v.mp4", listed)
                .is_err(),
            "{listed:?}"
        );
        assert!(
            store.upload(&id, "uploads", "v.mp4").is_ok(),
            "a refusal keeps the upload"
        );
    }
    assert!(matches!(
        store.complete_upload(&id, "uploads", "other", &[part(1, &p1.etag)]),
        Err(StoreError::NoSuchUpload(_))
    ));
    // Too small a first part.
    let small = store
        .create_upload("uploads", "s", ObjectHeaders::default(), None)
        .unwrap();
    let s1 = store
        .put_part(&small, "uploads", "s", 1, written(&store, b"ab"))
        .unwrap();
    let s2 = store
        .put_part(&small, "uploads", "s", 2, written(&store, b"cd"))
        .unwrap();
    assert!(matches!(
        store.complete_upload(
            &small,
            "uploads",
            "s",
            &[part(1, &s1.etag), part(2, &s2.etag)]
        ),
        Err(StoreError::EntityTooSmall { part: 1, size: 2 })
    ));
    // The gap (1, 3) is allowed.
    let meta = store
        .complete_upload(
            &id,
            "uploads",
            "v.mp4",
            &[part(1, &p1.etag), part(3, &p3.etag)],
        )
        .unwrap();
    assert!(meta.etag.ends_with("-2"), "{}", meta.etag);
    assert_eq!(meta.size, MIN_PART_SIZE + 4);
    assert_eq!(meta.part_range(2), Some(MIN_PART_SIZE..MIN_PART_SIZE + 4));
    let got = store.get("uploads", "v.mp4", u64::MAX).unwrap();
    assert_eq!(&got[got.len() - 4..], b"tail");
    assert!(matches!(
        store.complete_upload(&id, "uploads", "v.mp4", &[part(1, &p1.etag)]),
        Err(StoreError::NoSuchUpload(_))
    ));
    // Abort, then complete: no such upload. Expiry removes what is left.
    store.abort_upload(&small, "uploads", "s").unwrap();
    assert!(matches!(
        store.abort_upload(&small, "uploads", "s"),
        Err(StoreError::NoSuchUpload(_))
    ));
    store
        .create_upload("uploads", "left", ObjectHeaders::default(), None)
        .unwrap();
    assert_eq!(store.expire_uploads(std::time::Duration::ZERO).unwrap(), 1);
    assert!(store.uploads("uploads").unwrap().is_empty());
    assert_eq!(
        count_files(&store.root().join("uploads")),
        1,
        "only the object's blob is left"
    );
}

#[test]
fn the_folder_layout_is_imported_on_first_open() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("objects");
    std::fs::create_dir_all(root.join("uploads/photos")).unwrap();
    std::fs::write(root.join("uploads/photos/cat.jpg"), b"meow").unwrap();
    std::fs::create_dir_all(root.join("derived")).unwrap();
    let store = LocalStore::open(&root).unwrap();
    assert_eq!(store.list("uploads", "").unwrap(), ["photos/cat.jpg"]);
    assert_eq!(store.get("uploads", "photos/cat.jpg", 10).unwrap(), b"meow");
    assert!(store.bucket_exists("derived").unwrap());
    drop(store);
    let again = LocalStore::open(&root).unwrap();
    assert_eq!(again.list("uploads", "").unwrap(), ["photos/cat.jpg"]);
}

#[test]
fn bucket_names_follow_s3() {
    assert!(check_bucket("uploads").is_ok() && check_bucket("my.bucket-2").is_ok());
    for bad in [
        "ab",
        "Uploads",
        "-x-",
        "a..b",
        "has space",
        "objects/x",
        ".index",
    ] {
        assert!(check_bucket(bad).is_err(), "{bad}");
    }
}

mod keys {
    use super::*;
    use proptest::prelude::*;

    fn key_chars() -> impl Strategy<Value = String> {
        let c = prop_oneof![
            Just('/'),
            Just('.'),
            Just('%'),
            Just('\u{1}'),
            Just('é'),
            any::<char>(),
        ];
        proptest::collection::vec(c, 0..400).prop_map(String::from_iter)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// A key is refused as a bad name, or stored and listed back byte-exact, and the bucket
        /// folder holds nothing but blobs.
        #[test]
        fn any_key_is_refused_or_kept_exactly(key in key_chars()) {
            let (_d, store) = store();
            match store.put("uploads", &key, key.as_bytes()) {
                Err(StoreError::BadName(_)) => {
                    prop_assert!(check_key(&key).is_err());
                }
                Err(e) => prop_assert!(false, "{e}"),
                Ok(_) => {
                    prop_assert_eq!(store.list("uploads", "").unwrap(), vec![key.clone()]);
                    prop_assert_eq!(store.get("uploads", &key, 1 << 20).unwrap(), key.as_bytes());
                    let outside: Vec<_> = std::fs::read_dir(store.root().parent().unwrap())
                        .unwrap()
                        .map(|e| e.unwrap().file_name())
                        .collect();
                    prop_assert_eq!(outside, vec![std::ffi::OsString::from("objects")]);
                }
            }
        }
    }
}
