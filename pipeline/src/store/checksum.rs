//! Checksums over parts: a multipart object's checksum is S3's "composite" one, the digest of
//! its parts' digests with a `-N` suffix, which SDKs recognise and do not check against the
//! whole body.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::meta::{Checksums, PartMeta};

fn digest(algorithm: &str, data: &[u8]) -> Option<Vec<u8>> {
    use s3s::crypto::*;
    Some(match algorithm {
        "CRC32" => Crc32::checksum(data).to_vec(),
        "CRC32C" => Crc32c::checksum(data).to_vec(),
        "SHA1" => Sha1::checksum(data).as_ref().to_vec(),
        "SHA256" => Sha256::checksum(data).as_ref().to_vec(),
        "CRC64NVME" => Crc64Nvme::checksum(data).to_vec(),
        _ => return None,
    })
}

fn field<'a>(c: &'a Checksums, algorithm: &str) -> Option<&'a String> {
    match algorithm {
        "CRC32" => c.crc32.as_ref(),
        "CRC32C" => c.crc32c.as_ref(),
        "SHA1" => c.sha1.as_ref(),
        "SHA256" => c.sha256.as_ref(),
        "CRC64NVME" => c.crc64nvme.as_ref(),
        _ => None,
    }
}

fn set(c: &mut Checksums, algorithm: &str, value: String) {
    let slot = match algorithm {
        "CRC32" => &mut c.crc32,
        "CRC32C" => &mut c.crc32c,
        "SHA1" => &mut c.sha1,
        "SHA256" => &mut c.sha256,
        "CRC64NVME" => &mut c.crc64nvme,
        _ => return,
    };
    *slot = Some(value);
}

/// The composite checksum of `parts` for the upload's algorithm, when every part has one.
pub fn composite(algorithm: Option<&str>, parts: &[PartMeta]) -> Checksums {
    let mut out = Checksums::default();
    let Some(alg) = algorithm.map(str::to_ascii_uppercase) else {
        return out;
    };
    let mut joined = Vec::new();
    for p in parts {
        match field(&p.checksums, &alg).and_then(|v| STANDARD.decode(v).ok()) {
            Some(raw) => joined.extend(raw),
            None => return out,
        }
    }
    if let Some(d) = digest(&alg, &joined) {
        set(
            &mut out,
            &alg,
            format!("{}-{}", STANDARD.encode(d), parts.len()),
        );
        out.composite = true;
    }
    out
}

/// A checksum the client lists for a part must be the one the part was uploaded with.
pub fn agrees(listed: &Checksums, stored: &Checksums) -> bool {
    ["CRC32", "CRC32C", "SHA1", "SHA256", "CRC64NVME"]
        .iter()
        .all(|a| match (field(listed, a), field(stored, a)) {
            (Some(l), Some(s)) => l == s,
            _ => true,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use s3s::crypto::Checksum as _;

    fn part(crc32: &[u8]) -> PartMeta {
        PartMeta {
            size: 1,
            etag: String::new(),
            modified_ms: 0,
            blob: String::new(),
            checksums: Checksums {
                crc32: Some(STANDARD.encode(crc32)),
                ..Checksums::default()
            },
        }
    }

    #[test]
    fn composite_is_the_digest_of_the_part_digests() {
        let parts = [part(b"\x01\x02\x03\x04"), part(b"\x05\x06\x07\x08")];
        let c = composite(Some("crc32"), &parts);
        let want = s3s::crypto::Crc32::checksum(b"\x01\x02\x03\x04\x05\x06\x07\x08");
        assert_eq!(c.crc32, Some(format!("{}-2", STANDARD.encode(want))));
        assert!(c.composite);
        assert!(
            composite(Some("SHA256"), &parts).is_empty(),
            "parts lack SHA-256"
        );
        assert!(composite(None, &parts).is_empty());
    }
}
