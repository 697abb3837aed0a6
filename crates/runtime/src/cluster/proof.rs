//! The proof a forwarded request carries: an HMAC-SHA256, under a secret only the
//! replicas share, over who forwarded it, when, and what it asks (method, path and
//! query, a digest of the body). A request with a valid proof was sent by a peer and is
//! never forwarded again; a client that copies the header names without the secret gets
//! no different treatment from any other client.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// How far a proof's time may be from this replica's clock.
const VALID_FOR: Duration = Duration::from_secs(60);

/// The secret the replicas share, as setting `forward_secret`.
pub const SECRET_SETTING: &str = "forward_secret";

/// What a forwarded request is: its method, its path with the query, and its body.
pub struct ForwardedRequest<'a> {
    pub method: &'a str,
    pub path_and_query: &'a str,
    pub body: &'a [u8],
}

#[derive(Clone)]
pub struct ForwardProof {
    secret: Vec<u8>,
}

impl ForwardProof {
    pub fn new(secret: impl Into<Vec<u8>>) -> Self {
        ForwardProof {
            secret: secret.into(),
        }
    }

    /// The proof replica `by` attaches to `request`: `<unix seconds>:<hex mac>`.
    pub fn sign(&self, by: &str, request: &ForwardedRequest<'_>) -> String {
        let at = unix_now();
        format!("{at}:{}", hex::encode(self.mac(at, by, request)))
    }

    /// Whether `proof` is one this cluster made for `request`, forwarded by `by`,
    /// within the last minute.
    pub fn verify(&self, by: &str, proof: &str, request: &ForwardedRequest<'_>) -> bool {
        let Some((at, mac)) = proof.split_once(':') else {
            return false;
        };
        let (Ok(at), Ok(mac)) = (at.parse::<u64>(), hex::decode(mac)) else {
            return false;
        };
        if unix_now().abs_diff(at) > VALID_FOR.as_secs() {
            return false;
        }
        self.keyed(at, by, request).verify_slice(&mac).is_ok()
    }

    fn mac(&self, at: u64, by: &str, request: &ForwardedRequest<'_>) -> Vec<u8> {
        self.keyed(at, by, request).finalize().into_bytes().to_vec()
    }

    fn keyed(&self, at: u64, by: &str, request: &ForwardedRequest<'_>) -> Hmac<Sha256> {
        // Any key length is accepted by HMAC; the error case cannot happen.
        let mut mac = match Hmac::<Sha256>::new_from_slice(&self.secret) {
            Ok(mac) => mac,
            Err(_) => unreachable!("HMAC takes keys of any length"),
        };
        let body = Sha256::digest(request.body);
        for part in [
            at.to_string().as_bytes(),
            by.as_bytes(),
            request.method.as_bytes(),
            request.path_and_query.as_bytes(),
            hex::encode(body).as_bytes(),
        ] {
            mac.update(part);
            mac.update(b"\n");
        }
        mac
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(body: &[u8]) -> ForwardedRequest<'_> {
        ForwardedRequest {
            method: "POST",
            path_and_query: "/execute",
            body,
        }
    }

    #[test]
    fn a_proof_holds_for_exactly_the_request_and_replica_it_was_made_for() {
        let proof = ForwardProof::new("shared");
        let made = proof.sign("replica-a", &request(b"{\"code\":\"print(1)\"}"));
        assert!(proof.verify("replica-a", &made, &request(b"{\"code\":\"print(1)\"}")));
        assert!(!proof.verify("replica-b", &made, &request(b"{\"code\":\"print(1)\"}")));
        assert!(!proof.verify("replica-a", &made, &request(b"{\"code\":\"print(2)\"}")));
        let other_path = ForwardedRequest {
            path_and_query: "/runcode",
            ..request(b"{\"code\":\"print(1)\"}")
        };
        assert!(!proof.verify("replica-a", &made, &other_path));
        assert!(
            !ForwardProof::new("guessed").verify(
                "replica-a",
                &made,
                &request(b"{\"code\":\"print(1)\"}")
            ),
            "another secret"
        );
    }

    #[test]
    fn forged_and_stale_proofs_are_refused() {
        let proof = ForwardProof::new("shared");
        for forged in ["", "yes", "1:zz", "abc:00", "1:00"] {
            assert!(!proof.verify("a", forged, &request(b"")), "{forged}");
        }
        let stale = unix_now() - 3600;
        let mac = hex::encode(proof.mac(stale, "a", &request(b"")));
        assert!(!proof.verify("a", &format!("{stale}:{mac}"), &request(b"")));
        let fresh = unix_now();
        let mac = hex::encode(proof.mac(fresh, "a", &request(b"")));
        assert!(proof.verify("a", &format!("{fresh}:{mac}"), &request(b"")));
    }
}
