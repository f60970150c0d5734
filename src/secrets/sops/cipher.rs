//! SOPS' value cipher: `ENC[AES256_GCM,data:…,iv:…,tag:…,type:…]` strings,
//! AES-256-GCM with the value's key path as additional data.
use aes_gcm::aead::consts::{U12, U32};
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::aes::Aes256;
use aes_gcm::{AesGcm, Nonce};
use base64::Engine as _;

/// The type tag SOPS stores next to an encrypted value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    Str,
    Int,
    Float,
    Bool,
    Bytes,
    Time,
    Comment,
}

impl ValueType {
    fn parse(tag: &str) -> Option<ValueType> {
        Some(match tag {
            "str" => ValueType::Str,
            "int" => ValueType::Int,
            "float" => ValueType::Float,
            "bool" => ValueType::Bool,
            "bytes" => ValueType::Bytes,
            "time" => ValueType::Time,
            "comment" => ValueType::Comment,
            _ => return None,
        })
    }
}

/// Why a value could not be decrypted. Never carries plaintext.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CipherError {
    /// Not of the `ENC[AES256_GCM,…]` form (or bad base64 in it).
    Malformed(String),
    /// The GCM tag does not verify: wrong key, moved or modified value.
    Authentication,
}

/// Whether a string looks like a SOPS-encrypted value.
pub fn is_encrypted(value: &str) -> bool {
    value.starts_with("ENC[AES256_GCM,")
}

struct Parts {
    data: Vec<u8>,
    iv: Vec<u8>,
    tag: Vec<u8>,
    value_type: ValueType,
}

fn parse(value: &str) -> Result<Parts, CipherError> {
    let malformed = |what: &str| CipherError::Malformed(what.to_string());
    let body = value
        .strip_prefix("ENC[AES256_GCM,")
        .and_then(|rest| rest.strip_suffix(']'))
        .ok_or_else(|| malformed("not of the form ENC[AES256_GCM,data:…,iv:…,tag:…,type:…]"))?;
    let (mut data, mut iv, mut tag, mut ty) = (None, None, None, None);
    for field in body.split(',') {
        let (name, content) = field
            .split_once(':')
            .ok_or_else(|| malformed("an ENC[…] field has no name"))?;
        match name {
            "data" => data = Some(content),
            "iv" => iv = Some(content),
            "tag" => tag = Some(content),
            "type" => ty = Some(content),
            _ => return Err(malformed("unknown field in ENC[…]")),
        }
    }
    let b64 = |field: Option<&str>, name: &str| -> Result<Vec<u8>, CipherError> {
        let text = field.ok_or_else(|| malformed(&format!("ENC[…] has no {name}")))?;
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|_| malformed(&format!("ENC[…] {name} is not valid base64")))
    };
    let ty = ty.ok_or_else(|| malformed("ENC[…] has no type"))?;
    Ok(Parts {
        data: b64(data, "data")?,
        iv: b64(iv, "iv")?,
        tag: b64(tag, "tag")?,
        value_type: ValueType::parse(ty)
            .ok_or_else(|| malformed(&format!("ENC[…] has unknown type `{ty}`")))?,
    })
}

/// Decrypts one `ENC[…]` value with the 32-byte data key; `aad` is the
/// additional data SOPS bound it to (the key path joined with `:` plus a
/// trailing `:`, or the `lastmodified` timestamp for the MAC).
pub fn decrypt(
    value: &str,
    key: &[u8; 32],
    aad: &str,
) -> Result<(Vec<u8>, ValueType), CipherError> {
    let parts = parse(value)?;
    if parts.tag.len() != 16 {
        return Err(CipherError::Malformed("ENC[…] tag is not 16 bytes".into()));
    }
    let mut message = parts.data;
    message.extend_from_slice(&parts.tag);
    let payload = Payload {
        msg: &message,
        aad: aad.as_bytes(),
    };
    // SOPS writes 32-byte IVs (Go's NewGCMWithNonceSize); accept the
    // standard 12-byte one too.
    let plain = match parts.iv.len() {
        32 => AesGcm::<Aes256, U32>::new(key.into())
            .decrypt(Nonce::<U32>::from_slice(&parts.iv), payload),
        12 => AesGcm::<Aes256, U12>::new(key.into())
            .decrypt(Nonce::<U12>::from_slice(&parts.iv), payload),
        _ => {
            return Err(CipherError::Malformed(
                "ENC[…] iv is neither 32 nor 12 bytes".into(),
            ))
        }
    }
    .map_err(|_| CipherError::Authentication)?;
    Ok((plain, parts.value_type))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_values_not_in_sops_form() {
        let key = [0u8; 32];
        assert!(matches!(
            decrypt("plain", &key, "a:"),
            Err(CipherError::Malformed(_))
        ));
        assert!(matches!(
            decrypt(
                "ENC[AES256_GCM,data:!!,iv:AA==,tag:AA==,type:str]",
                &key,
                "a:"
            ),
            Err(CipherError::Malformed(_))
        ));
        assert!(matches!(
            decrypt(
                "ENC[AES256_GCM,data:AA==,iv:AA==,tag:AA==,type:weird]",
                &key,
                "a:"
            ),
            Err(CipherError::Malformed(_))
        ));
    }

    #[test]
    fn round_trips_with_a_32_byte_iv_and_checks_the_additional_data() {
        let key = [7u8; 32];
        let iv = [9u8; 32];
        let cipher = AesGcm::<Aes256, U32>::new((&key).into());
        let sealed = cipher
            .encrypt(
                Nonce::<U32>::from_slice(&iv),
                Payload {
                    msg: b"hello",
                    aad: b"db:password:",
                },
            )
            .unwrap();
        let (data, tag) = sealed.split_at(sealed.len() - 16);
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        let value = format!(
            "ENC[AES256_GCM,data:{},iv:{},tag:{},type:str]",
            b64(data),
            b64(&iv),
            b64(tag)
        );
        assert_eq!(
            decrypt(&value, &key, "db:password:").unwrap(),
            (b"hello".to_vec(), ValueType::Str)
        );
        assert_eq!(
            decrypt(&value, &key, "db:user:"),
            Err(CipherError::Authentication)
        );
    }
}
