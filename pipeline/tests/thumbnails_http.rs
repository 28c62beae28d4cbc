//! Every fixture photo through `POST /v1/functions/{name}/invoke`: sizes, orientation, pixels.

mod common;

use base64::Engine;
use common::*;

const CONFIG: &str = r#"
functions:
  - name: thumbs
    kind: thumbnail
    params: { sizes: [256, 1024], format: jpeg, quality: 80 }
    resources: { batch: { max_size: 4, max_delay: 2ms }, timeout: 60s }
  - name: png
    kind: thumbnail
    params: { sizes: [128], format: png }
  - name: webp
    kind: thumbnail
    params: { sizes: [128], format: webp, quality: 75 }
  - name: big
    kind: thumbnail
    params: { sizes: [1000], format: png, upscale: true }
"#;

/// Displayed (upright) size of each fixture, from the Pillow-made golden file.
fn displayed(file: &str) -> (u32, u32) {
    let golden: serde_json::Value = serde_json::from_slice(&fixture("golden/images.json")).unwrap();
    let entry = golden["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["file"] == format!("images/{file}"))
        .unwrap();
    let wh = &entry["displayed_width_height"];
    (
        wh[0].as_u64().unwrap() as u32,
        wh[1].as_u64().unwrap() as u32,
    )
}

fn expected(displayed: (u32, u32), width: u32) -> (u32, u32) {
    let w = width.min(displayed.0);
    (
        w,
        ((displayed.1 as f64 * w as f64 / displayed.0 as f64).round() as u32).max(1),
    )
}

fn artifacts(reply: &serde_json::Value) -> Vec<(String, String, Vec<u8>)> {
    reply["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let data = base64::engine::general_purpose::STANDARD
                .decode(a["data"].as_str().unwrap())
                .unwrap();
            assert_eq!(a["size"].as_u64().unwrap() as usize, data.len());
            (
                a["name"].as_str().unwrap().to_string(),
                a["content_type"].as_str().unwrap().to_string(),
                data,
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fixture_photo_gives_correct_thumbnails() {
    let srv = start(CONFIG).await;
    let mut report = Vec::new();
    for file in fixture_names("images") {
        let res = srv
            .invoke("thumbs", fixture(&format!("images/{file}")))
            .await;
        assert_eq!(res.status(), 200, "{file}");
        let reply = body_json(res).await;
        let arts = artifacts(&reply);
        let names: Vec<&str> = arts.iter().map(|a| a.0.as_str()).collect();
        // Sizes above the image's own keep their name and come out at the image's width.
        assert_eq!(names, ["256.jpg", "1024.jpg"], "{file}");
        let shown = displayed(&file);
        assert_eq!(reply["summary"]["input"]["width"], shown.0, "{file}");
        for ((_, ct, data), width) in arts.iter().zip([256, 1024]) {
            assert_eq!(ct, "image/jpeg");
            let img = image::load_from_memory_with_format(data, image::ImageFormat::Jpeg).unwrap();
            assert_eq!(
                (img.width(), img.height()),
                expected(shown, width),
                "{file} at {width}"
            );
        }
        // Pixels: close to a full-resolution Pillow LANCZOS reference (orientation applied).
        let ours = image::load_from_memory(&arts[0].2).unwrap().to_rgb8();
        let stem = file.rsplit_once('.').unwrap().0;
        let reference = image::open(root().join(format!("fixtures/reference/{stem}_256.png")))
            .unwrap()
            .to_rgb8();
        let db = psnr(&ours, &reference);
        report.push(format!("{file}: {db:.1} dB"));
        assert!(
            db >= 29.0,
            "{file}: PSNR {db:.1} dB against the reference is under 29 dB"
        );
    }
    eprintln!(
        "PSNR against the Pillow reference:\n  {}",
        report.join("\n  ")
    );
}

#[tokio::test]
async fn exif_rotated_dogs_come_out_upright() {
    let srv = start(CONFIG).await;
    let res = srv
        .invoke(
            "thumbs",
            fixture("images/dogs_exif_orientation6_3088x2048.jpg"),
        )
        .await;
    let reply = body_json(res).await;
    assert_eq!(reply["summary"]["input"]["orientation"], 6);
    let small = image::load_from_memory(&artifacts(&reply)[0].2)
        .unwrap()
        .to_rgb8();
    // Stored sideways as 3088x2048; displayed portrait.
    assert_eq!(small.dimensions(), (256, 386));
    let upright =
        image::open(root().join("fixtures/reference/dogs_exif_orientation6_3088x2048_256.png"))
            .unwrap()
            .to_rgb8();
    assert!(psnr(&small, &upright) > 30.0);
    // The same pixels turned the other way would be far off.
    let wrong = image::imageops::rotate180(&upright);
    assert!(psnr(&small, &wrong) < 20.0);
}

#[tokio::test]
async fn png_keeps_alpha_and_grey_and_webp_decodes() {
    let srv = start(CONFIG).await;
    let reply = body_json(
        srv.invoke("png", fixture("images/chelsea_cat_alpha_451x300.png"))
            .await,
    )
    .await;
    let (name, ct, data) = &artifacts(&reply)[0];
    assert_eq!((name.as_str(), ct.as_str()), ("128.png", "image/png"));
    let img = image::load_from_memory(data).unwrap();
    assert!(img.color().has_alpha(), "alpha dropped");
    assert_eq!((img.width(), img.height()), (128, 85));

    let reply = body_json(
        srv.invoke("png", fixture("images/camera_gray_512x512.png"))
            .await,
    )
    .await;
    let img = image::load_from_memory(&artifacts(&reply)[0].2).unwrap();
    assert_eq!(img.color(), image::ColorType::L8);

    for file in [
        "mountains_1920x1440.jpg",
        "chelsea_cat_alpha_451x300.png",
        "chelsea_zoom_animated_240x160.gif",
    ] {
        let reply = body_json(srv.invoke("webp", fixture(&format!("images/{file}"))).await).await;
        let (name, ct, data) = &artifacts(&reply)[0];
        assert_eq!(
            (name.as_str(), ct.as_str()),
            ("128.webp", "image/webp"),
            "{file}"
        );
        let img = image::load_from_memory_with_format(data, image::ImageFormat::WebP).unwrap();
        assert_eq!(img.width(), 128, "{file}");
    }
}

#[tokio::test]
async fn upscale_only_when_asked_and_cmyk_is_right() {
    let srv = start(CONFIG).await;
    let reply = body_json(
        srv.invoke("big", fixture("images/chelsea_cat_451x300.png"))
            .await,
    )
    .await;
    let img = image::load_from_memory(&artifacts(&reply)[0].2).unwrap();
    assert_eq!((img.width(), img.height()), (1000, 665));
    // The CMYK JPEG and the RGB PNG of the same photo give nearly the same thumbnail.
    let a = body_json(
        srv.invoke("png", fixture("images/coffee_cmyk_600x400.jpg"))
            .await,
    )
    .await;
    let b = body_json(
        srv.invoke("png", fixture("images/coffee_600x400.png"))
            .await,
    )
    .await;
    let a = image::load_from_memory(&artifacts(&a)[0].2)
        .unwrap()
        .to_rgb8();
    let b = image::load_from_memory(&artifacts(&b)[0].2)
        .unwrap()
        .to_rgb8();
    assert!(
        psnr(&a, &b) > 30.0,
        "CMYK colours are off: {:.1} dB",
        psnr(&a, &b)
    );
}

#[tokio::test]
async fn reply_forms_multipart_and_first() {
    let srv = start(CONFIG).await;
    let photo = fixture("images/rocket_640x427.jpg");
    let url = format!("{}/v1/functions/thumbs/invoke", srv.base);

    let res = srv
        .client
        .post(format!("{url}?return=first"))
        .body(photo.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "image/jpeg");
    let img = image::load_from_memory(&res.bytes().await.unwrap()).unwrap();
    assert_eq!(img.width(), 256);

    let res = srv
        .client
        .post(&url)
        .header("accept", "multipart/mixed")
        .body(photo)
        .send()
        .await
        .unwrap();
    let ct = res.headers()["content-type"].to_str().unwrap().to_string();
    let boundary = ct
        .strip_prefix("multipart/mixed; boundary=")
        .expect(&ct)
        .to_string();
    let body = res.bytes().await.unwrap();
    let parts = split_multipart(&body, &boundary);
    assert_eq!(parts.len(), 3);
    assert!(parts[0].0.contains("application/json"));
    let summary: serde_json::Value = serde_json::from_slice(&parts[0].1).unwrap();
    assert_eq!(summary["artifacts"][1]["name"], "1024.jpg");
    assert!(parts[1].0.contains("filename=\"256.jpg\""));
    assert_eq!(image::load_from_memory(&parts[1].1).unwrap().width(), 256);
    assert_eq!(image::load_from_memory(&parts[2].1).unwrap().width(), 640);

    let res = srv
        .client
        .post(format!("{url}?return=everything"))
        .body(vec![1])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
}

/// (headers, body) of each part.
fn split_multipart(body: &[u8], boundary: &str) -> Vec<(String, Vec<u8>)> {
    let delim = format!("--{boundary}");
    let mut parts = Vec::new();
    let mut rest = body;
    loop {
        let at = find(rest, delim.as_bytes()).expect("delimiter");
        rest = &rest[at + delim.len()..];
        if rest.starts_with(b"--") {
            return parts;
        }
        rest = &rest[2..]; // CRLF
        let head_end = find(rest, b"\r\n\r\n").unwrap();
        let head = String::from_utf8_lossy(&rest[..head_end]).into_owned();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .unwrap()
            .parse()
            .unwrap();
        let start = head_end + 4;
        parts.push((head, rest[start..start + len].to_vec()));
        rest = &rest[start + len..];
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
