//! Presigned download URLs for record artifacts, in the manner of object
//! stores: the URL carries its expiry and an HMAC over the path and expiry,
//! so it needs no other credential and cannot be altered or extended.
//!
//! The key is generated once per data directory (0600), so URLs stay valid
//! across daemon restarts until their expiry.

use std::path::Path;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::ApiError;

pub struct Presigner {
    key: Vec<u8>,
}

/// The path that serves record `id`.
pub fn download_path(id: &str) -> String {
    format!("/download/{id}")
}

impl Presigner {
    pub fn new(key: Vec<u8>) -> Self {
        Self { key }
    }

    /// Load `dir/presign.key`, creating it with 32 random bytes if absent.
    pub fn load_or_create(dir: &Path) -> std::io::Result<Self> {
        let path = dir.join("presign.key");
        match std::fs::read(&path) {
            Ok(key) if key.len() >= 32 => return Ok(Self::new(key)),
            Ok(_) | Err(_) => {}
        }
        let mut key = vec![0u8; 32];
        std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut key)?;
        crate::files::write_atomic(&path, &key)?;
        Ok(Self::new(key))
    }

    fn mac(&self, path: &str, expires: i64) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key");
        mac.update(format!("GET\n{path}\n{expires}").as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// `base` + path + `?Expires=<unix s>&Signature=<hex>`.
    pub fn url(&self, base: &str, id: &str, expires_s: i64) -> String {
        let path = download_path(id);
        format!(
            "{base}{path}?Expires={expires_s}&Signature={}",
            self.mac(&path, expires_s)
        )
    }

    /// Check a download request's query against its path at `now_s`.
    pub fn check(
        &self,
        path: &str,
        query: &[(String, String)],
        now_s: i64,
    ) -> Result<(), ApiError> {
        let get = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let expires: i64 = get("Expires")
            .and_then(|v| v.parse().ok())
            .ok_or(ApiError::MissingParameter("Expires"))?;
        let signature = get("Signature").ok_or(ApiError::MissingParameter("Signature"))?;
        let expected = self.mac(path, expires);
        let same = signature.len() == expected.len()
            && signature
                .bytes()
                .zip(expected.bytes())
                .fold(0u8, |a, (x, y)| a | (x ^ y))
                == 0;
        if !same {
            return Err(ApiError::SignatureDoesNotMatch(
                "the download URL's signature is not valid".into(),
            ));
        }
        if now_s > expires {
            return Err(ApiError::InvalidTimeStampExpired(
                "the download URL has expired".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::protocol::decode_pairs;

    #[test]
    fn urls_verify_until_they_expire_and_resist_tampering() {
        let p = Presigner::new(vec![7; 32]);
        let url = p.url("http://h", "rec-1", 1000);
        let (path, query) = url
            .strip_prefix("http://h")
            .unwrap()
            .split_once('?')
            .unwrap();
        let q = decode_pairs(query);
        p.check(path, &q, 999).unwrap();
        assert_eq!(
            p.check(path, &q, 1001).unwrap_err().code(),
            "InvalidTimeStamp.Expired"
        );
        assert_eq!(
            p.check("/download/rec-2", &q, 999).unwrap_err().code(),
            "SignatureDoesNotMatch"
        );
        let longer = decode_pairs(&query.replace("Expires=1000", "Expires=9999"));
        assert_eq!(
            p.check(path, &longer, 999).unwrap_err().code(),
            "SignatureDoesNotMatch"
        );
        assert_eq!(
            p.check(path, &[], 999).unwrap_err().code(),
            "MissingExpires"
        );
    }
}
