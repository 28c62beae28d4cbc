//! A table of broken configs: each must be refused, naming the field and what was expected.

use super::*;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(
        Path::new("weir.yaml"),
        text,
        &Inventory::cpu_only("no GPU in tests"),
    )
}

const GOOD: &str = r#"
data_dir: ./weir-data
http: { listen: 127.0.0.1:8080 }
functions:
  - name: thumbs
    kind: thumbnail
    params: { sizes: [256, 1024], format: jpeg, quality: 80 }
    triggers:
      - s3: { bucket: uploads, prefix: images/, suffix: [.jpg, .png] }
      - http: { path: /thumbs }
    output: { bucket: derived, key: "thumbs/{key}/{size}.jpg" }
    resources:
      device: auto
      workers: { min: 0, max: 4, idle_after: 90s }
      batch: { max_size: 16, max_delay: 5ms }
      timeout: 3s
      max_input: 50MB
      retries: { max: 2, backoff: 1s }
"#;

#[test]
fn the_design_example_loads() {
    let cfg = parse(GOOD).expect("valid");
    let f = &cfg.functions[0];
    assert_eq!(f.spec.name, "thumbs");
    assert_eq!(f.device, Device::Cpu);
    assert_eq!(
        f.spec.resources.batch.max_delay,
        std::time::Duration::from_millis(5)
    );
    assert_eq!(f.spec.resources.max_input, 50_000_000);
    assert!(matches!(&f.spec.triggers[0], Trigger::S3(s) if s.suffix == [".jpg", ".png"]));
}

const VIDEO: &str = r#"
data_dir: ./weir-data
functions:
  - name: frames
    kind: keyframes
    params: { mode: { interval: 2s }, max_width: 640 }
    triggers:
      - s3: { bucket: uploads, suffix: [.mp4, .webm] }
    output: { bucket: derived, key: "keyframes/{key}/{index}.jpg" }
"#;

#[test]
fn keyframes_keys_give_every_picture_and_manifest_a_place() {
    let cfg = parse(VIDEO).expect("valid");
    assert_eq!(cfg.functions[0].spec.kind, "keyframes");
    for (key, says) in [
        ("keyframes/{key}/frame.jpg", "{index} or {pts_ms}"),
        (
            "keyframes/{index}/{key}.jpg",
            "{key} or {stem} before the last '/'",
        ),
        ("{key}-{index}.jpg", "{key} or {stem} before the last '/'"),
        ("keyframes/{key}/{size}.jpg", "unknown variable {size}"),
    ] {
        let text = VIDEO.replace("keyframes/{key}/{index}.jpg", key);
        let Err(e) = parse(&text) else {
            panic!("{key} was accepted")
        };
        let e = e.to_string();
        assert!(
            e.contains("functions[0].output.key") && e.contains(says),
            "{key}: {e}"
        );
    }
    for (param, field) in [
        ("mode: { interval: 2 }", "params.mode"),
        ("mode: { scene: 3 }", "params.mode.scene"),
        ("max_width: 0", "params.max_width"),
    ] {
        let text = VIDEO.replace("mode: { interval: 2s }, max_width: 640", param);
        let Err(e) = parse(&text) else {
            panic!("{param} was accepted")
        };
        let e = e.to_string();
        assert!(e.contains(&format!("functions[0].{field}")), "{param}: {e}");
    }
}

#[test]
fn broken_configs_name_the_field() {
    let table: &[(&str, &str, &str, &str)] = &[
        // (what, replace this, with this, expected field)
        ("misspelt top key", "http:", "htpp:", "htpp"),
        (
            "an unknown kind",
            "kind: thumbnail",
            "kind: resize",
            "functions[0].kind",
        ),
        (
            "a store of an unknown kind",
            "data_dir: ./weir-data",
            "data_dir: ./weir-data\nstore: { kind: ftp }",
            "store.kind",
        ),
        (
            "an S3 store with one key",
            "data_dir: ./weir-data",
            "data_dir: ./weir-data\nstore: { kind: s3, endpoint: \"http://minio:9000\", access_key: a }",
            "store",
        ),
        (
            "an S3 endpoint that is not a URL",
            "data_dir: ./weir-data",
            "data_dir: ./weir-data\nstore: { kind: s3, endpoint: minio:9000 }",
            "store.endpoint",
        ),
        (
            "a misspelt S3 store key",
            "data_dir: ./weir-data",
            "data_dir: ./weir-data\nstore: { kind: s3, endpont: \"http://minio:9000\" }",
            "store",
        ),
        (
            "a bus of an unknown kind",
            "data_dir: ./weir-data",
            "data_dir: ./weir-data\nbus: { kind: kafka }",
            "bus.kind",
        ),
        (
            "a NATS stream name with a dot",
            "data_dir: ./weir-data",
            "data_dir: ./weir-data\nbus: { kind: nats, url: \"nats://n:4222\", stream: a.b }",
            "bus.stream",
        ),
        (
            "no NATS replicas",
            "data_dir: ./weir-data",
            "data_dir: ./weir-data\nbus: { kind: nats, url: \"nats://n:4222\", replicas: 0 }",
            "bus.replicas",
        ),
        (
            "a NATS ack wait over 30s",
            "data_dir: ./weir-data",
            "data_dir: ./weir-data\nbus: { kind: nats, url: \"nats://n:4222\", ack_wait: 1m }",
            "bus.ack_wait",
        ),
        (
            "a misspelt NATS key",
            "data_dir: ./weir-data",
            "data_dir: ./weir-data\nbus: { kind: nats, url: \"nats://n:4222\", replica: 3 }",
            "bus",
        ),
        (
            "a nats trigger without a NATS bus",
            "      - http: { path: /thumbs }",
            "      - nats: { subject: media.in }",
            "functions[0].triggers[1].nats",
        ),
        (
            "a poll interval under a second",
            "      - http: { path: /thumbs }",
            "      - poll: { bucket: uploads, interval: 100ms }",
            "functions[0].triggers[1].poll.interval",
        ),
        (
            "a poll interval that is not a duration",
            "      - http: { path: /thumbs }",
            "      - poll: { bucket: uploads, interval: often }",
            "functions[0].triggers[1].poll.interval",
        ),
        (
            "a poll trigger without a bucket name",
            "      - http: { path: /thumbs }",
            "      - poll: { bucket: \"\" }",
            "functions[0].triggers[1].poll.bucket",
        ),
        (
            "a poll trigger with an s3 one in the same entry",
            "      - http: { path: /thumbs }",
            "      - { poll: { bucket: uploads }, s3: { bucket: uploads } }",
            "functions[0].triggers[1]",
        ),
        (
            "no inference admitted",
            "listen: 127.0.0.1:8080 }",
            "listen: 127.0.0.1:8080, max_inference_requests: 0 }",
            "http.max_inference_requests",
        ),
        (
            "budget not a size",
            "data_dir: ./weir-data",
            "data_dir: ./weir-data\nmodel_memory_budget: lots",
            "model_memory_budget",
        ),
        (
            "budget for an unknown device",
            "data_dir: ./weir-data",
            "data_dir: ./weir-data\nmodel_memory_budget: { tpu: 1GB }",
            "model_memory_budget",
        ),
        (
            "budget for a device not a size",
            "data_dir: ./weir-data",
            "data_dir: ./weir-data\nmodel_memory_budget: { cpu: 1GB, cuda: most }",
            "model_memory_budget",
        ),
        (
            "inference body not a size",
            "listen: 127.0.0.1:8080 }",
            "listen: 127.0.0.1:8080, max_inference_body: big }",
            "http.max_inference_body",
        ),
        (
            "misspelt function key",
            "    kind: thumbnail",
            "    knd: thumbnail",
            "functions[0].knd",
        ),
        (
            "unknown kind",
            "kind: thumbnail",
            "kind: thumbnale",
            "functions[0].kind",
        ),
        (
            "misspelt param",
            "sizes: [256, 1024]",
            "size: [256, 1024]",
            "functions[0].params.size",
        ),
        (
            "zero width",
            "sizes: [256, 1024]",
            "sizes: [0]",
            "functions[0].params.sizes",
        ),
        (
            "width not a number",
            "sizes: [256, 1024]",
            "sizes: [big]",
            "functions[0].params.sizes[0]",
        ),
        (
            "bad format",
            "format: jpeg",
            "format: bmp",
            "functions[0].params.format",
        ),
        (
            "quality too high",
            "quality: 80",
            "quality: 101",
            "functions[0].params.quality",
        ),
        (
            "bad duration",
            "timeout: 3s",
            "timeout: soon",
            "functions[0].resources.timeout",
        ),
        (
            "bare number duration",
            "max_delay: 5ms",
            "max_delay: 5",
            "functions[0].resources.batch.max_delay",
        ),
        (
            "bad size",
            "max_input: 50MB",
            "max_input: lots",
            "functions[0].resources.max_input",
        ),
        (
            "zero batch",
            "max_size: 16",
            "max_size: 0",
            "functions[0].resources.batch.max_size",
        ),
        (
            "misspelt resource",
            "retries:",
            "retires:",
            "functions[0].resources.retires",
        ),
        (
            "min over max",
            "min: 0, max: 4",
            "min: 5, max: 4",
            "functions[0].resources.workers.min",
        ),
        (
            "zero workers",
            "min: 0, max: 4",
            "min: 0, max: 0",
            "functions[0].resources.workers.max",
        ),
        (
            "no idle time",
            "idle_after: 90s",
            "idle_after: 0s",
            "functions[0].resources.workers.idle_after",
        ),
        (
            "unknown device",
            "device: auto",
            "device: tpu",
            "functions[0].resources.device",
        ),
        (
            "cuda for a CPU kind",
            "device: auto",
            "device: cuda",
            "functions[0].resources.device",
        ),
        (
            "bad name",
            "name: thumbs",
            "name: Thumbs!",
            "functions[0].name",
        ),
        (
            "unknown trigger",
            "- http: { path: /thumbs }",
            "- ftp: { path: /thumbs }",
            "functions[0].triggers[1].ftp",
        ),
        (
            "reserved path",
            "path: /thumbs",
            "path: /v1/mine",
            "functions[0].triggers[1].http.path",
        ),
        (
            "two kinds in one trigger",
            "- http: { path: /thumbs }",
            "- { http: { path: /thumbs }, s3: { bucket: b } }",
            "functions[0].triggers[1]",
        ),
        (
            "relative path",
            "path: /thumbs",
            "path: thumbs",
            "functions[0].triggers[1].http.path",
        ),
        (
            "bad listen",
            "listen: 127.0.0.1:8080",
            "listen: localhost",
            "http.listen",
        ),
        (
            "output without key",
            "output: { bucket: derived, key: \"thumbs/{key}/{size}.jpg\" }",
            "output: { bucket: derived }",
            "functions[0].output",
        ),
    ];
    for (what, from, to, field) in table {
        assert!(
            GOOD.contains(from),
            "{what}: the table's pattern {from:?} is not in the example"
        );
        let text = GOOD.replacen(from, to, 1);
        let e = match parse(&text) {
            Ok(_) => panic!("{what}: accepted"),
            Err(e) => e,
        };
        assert_eq!(e.file, "weir.yaml", "{what}");
        assert_eq!(e.field, *field, "{what}: {e}");
        assert!(!e.message.is_empty(), "{what}");
    }
}

#[test]
fn a_memory_budget_is_one_size_or_sizes_by_device() {
    use weir_models::budget::Budget;
    let with = |b: &str| {
        parse(&GOOD.replacen(
            "data_dir: ./weir-data",
            &format!("data_dir: ./weir-data\nmodel_memory_budget: {b}"),
            1,
        ))
    };
    let every = with("2GB").unwrap().file.model_memory_budget;
    assert_eq!(every, Budget::every(2_000_000_000));
    assert_eq!(every.limit(Device::Cuda(3)), Some(2_000_000_000));
    let by = with(r#"{ cpu: 8GB, cuda: 20GB, "cuda:1": 40GB }"#)
        .unwrap()
        .file
        .model_memory_budget;
    assert_eq!(by.limit(Device::Cpu), Some(8_000_000_000));
    assert_eq!(by.limit(Device::Cuda(0)), Some(20_000_000_000));
    assert_eq!(by.limit(Device::Cuda(1)), Some(40_000_000_000));
    let gpu_only = with("{ cuda: 1GiB }").unwrap().file.model_memory_budget;
    assert_eq!(
        gpu_only.limit(Device::Cpu),
        None,
        "no limit where none is given"
    );
    assert_eq!(
        parse(GOOD).unwrap().file.model_memory_budget,
        Budget::default()
    );
}

#[test]
fn messages_say_what_was_expected() {
    let e = parse(&GOOD.replacen("quality: 80", "quality: 101", 1))
        .err()
        .unwrap();
    assert!(e.to_string().contains("1 to 100"), "{e}");
    let e = parse(&GOOD.replacen("timeout: 3s", "timeout: soon", 1))
        .err()
        .unwrap();
    assert!(e.message.contains("expected a duration"), "{e}");
    let e = parse(
        &GOOD
            .replacen("htpp", "http", 1)
            .replacen("http:", "htpp:", 1),
    )
    .err()
    .unwrap();
    assert!(e.message.contains("unknown field `htpp`"), "{e}");
    let e = parse(&GOOD.replacen("device: auto", "device: cuda", 1))
        .err()
        .unwrap();
    assert!(e.message.contains("CPU only"), "{e}");
}

#[test]
fn duplicate_names_and_paths_are_refused() {
    let twice = format!("{GOOD}{}", &GOOD[GOOD.find("  - name").unwrap()..]);
    let e = parse(&twice).err().unwrap();
    assert_eq!(e.field, "functions[1].name");
}

#[test]
fn a_functions_dir_adds_specs_and_reports_its_own_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("fns")).unwrap();
    std::fs::write(
        dir.path().join("fns/a.yaml"),
        "name: small\nkind: thumbnail\nparams: { sizes: [64] }\n",
    )
    .unwrap();
    let main = dir.path().join("weir.yaml");
    std::fs::write(&main, "functions_dir: fns\n").unwrap();
    let inv = Inventory::cpu_only("test");
    let cfg = Config::load(&main, &inv).unwrap();
    assert_eq!(cfg.functions[0].spec.name, "small");
    std::fs::write(
        dir.path().join("fns/b.yaml"),
        "name: broken\nkind: thumbnail\nparams: { sizes: [64], qualty: 3 }\n",
    )
    .unwrap();
    let e = Config::load(&main, &inv).err().unwrap();
    assert!(e.file.ends_with("b.yaml"), "{e}");
    assert_eq!(e.field, "functions[1].params.qualty");
}

#[test]
fn an_output_that_would_feed_its_own_trigger_is_refused() {
    let looped = GOOD.replacen(
        "output: { bucket: derived, key: \"thumbs/{key}/{size}.jpg\" }",
        "output: { bucket: uploads, key: \"images/small/{key}.jpg\" }",
        1,
    );
    let e = parse(&looped).err().expect("refused");
    assert_eq!(e.field, "functions[0].output");
    assert!(
        e.message.contains("could trigger this function again"),
        "{e}"
    );
    // The same bucket under a prefix the trigger does not watch is fine.
    let elsewhere = GOOD.replacen("bucket: derived", "bucket: uploads", 1);
    assert!(parse(&elsewhere).is_ok());
}

#[test]
fn output_templates_and_buckets_are_checked() {
    let e = parse(&GOOD.replacen("{size}.jpg", "{width}.jpg", 1))
        .err()
        .unwrap();
    assert_eq!(e.field, "functions[0].output.key");
    assert!(e.message.contains("unknown variable {width}"), "{e}");
    let e = parse(&GOOD.replacen("bucket: derived", "bucket: Derived_Bucket", 1))
        .err()
        .unwrap();
    assert_eq!(e.field, "functions[0].output.bucket");
}

#[test]
fn a_poll_trigger_and_an_s3_store_load() {
    let text = GOOD.replace(
        "      - http: { path: /thumbs }",
        "      - poll: { bucket: uploads, prefix: images/, suffix: .jpg }",
    ) + "store: { kind: s3, endpoint: \"http://minio:9000\", access_key: a, secret_key: b }\n";
    let cfg = parse(&text).expect("valid");
    let Trigger::Poll(p) = &cfg.functions[0].spec.triggers[1] else {
        panic!("{:?}", cfg.functions[0].spec.triggers)
    };
    assert_eq!(
        p.interval,
        std::time::Duration::from_secs(30),
        "the default"
    );
    assert_eq!(
        (p.prefix.as_deref(), p.suffix.as_slice()),
        (Some("images/"), &[".jpg".to_string()][..])
    );
    let StoreSection::S3(s3) = &cfg.file.store else {
        panic!("{:?}", cfg.file.store)
    };
    assert_eq!(s3.endpoint.as_deref(), Some("http://minio:9000"));
    assert_eq!(
        s3.path_style, None,
        "decided at connect: on with an endpoint"
    );
    // A poll trigger's output may not feed it either.
    let looping = GOOD.replace(
        "      - http: { path: /thumbs }",
        "      - poll: { bucket: derived }",
    );
    let e = parse(&looping).err().expect("refused");
    assert_eq!(e.field, "functions[0].output", "{e}");
}

#[test]
fn the_spec_hash_follows_what_decides_the_outputs() {
    let hash = |text: &str| parse(text).expect("valid").functions[0].spec.output_hash();
    let base = hash(GOOD);
    assert_eq!(base.len(), 16);
    assert_eq!(
        hash(&GOOD.replace("timeout: 3s", "timeout: 9s")),
        base,
        "resources do not count"
    );
    assert_eq!(
        hash(&GOOD.replace(
            "{ sizes: [256, 1024], format: jpeg, quality: 80 }",
            "{ quality: 80, format: jpeg, sizes: [256, 1024] }"
        )),
        base,
        "nor the order of the params"
    );
    assert_ne!(hash(&GOOD.replace("quality: 80", "quality: 81")), base);
    assert_ne!(hash(&GOOD.replace("{size}.jpg", "{size}.jpeg")), base);
}

#[test]
fn a_cron_trigger_loads_and_a_bad_one_says_which_part_is_wrong() {
    let cron = |line: &str| GOOD.replace("      - http: { path: /thumbs }", line);
    let cfg = parse(&cron(
        "      - cron: { schedule: \"*/5 * * * *\", payload: { window: 5m } }",
    ))
    .expect("valid");
    let Trigger::Cron(c) = &cfg.functions[0].spec.triggers[1] else {
        panic!("{:?}", cfg.functions[0].spec.triggers)
    };
    assert_eq!(c.timezone, "UTC", "the default");
    assert_eq!(serde_json::to_value(&c.payload).unwrap()["window"], "5m");
    for (line, says) in [
        (
            "      - cron: { schedule: \"*/5 * * *\" }",
            "expected a cron schedule",
        ),
        (
            "      - cron: { schedule: \"99 * * * *\" }",
            "expected a cron schedule",
        ),
        (
            "      - cron: { schedule: \"0 9 * * *\", timezone: Mars/Olympus }",
            "IANA time zone",
        ),
    ] {
        let e = parse(&cron(line)).err().expect(line);
        assert_eq!(e.field, "functions[0].triggers[1].cron", "{e}");
        assert!(e.message.contains(says), "{line}: {e}");
    }
    let e = parse(&cron("      - cron: { every: 5m }"))
        .err()
        .expect("refused");
    assert!(e.to_string().contains("every"), "{e}");
    // A built-in kind fired by a schedule needs a place for what it makes.
    let no_output = cron("      - cron: { schedule: \"* * * * *\" }")
        .replace(
            "    output: { bucket: derived, key: \"thumbs/{key}/{size}.jpg\" }\n",
            "",
        )
        .replace(
            "      - s3: { bucket: uploads, prefix: images/, suffix: [.jpg, .png] }\n",
            "",
        );
    let e = parse(&no_output).err().expect("refused");
    assert_eq!(e.field, "functions[0].output", "{e}");
}
