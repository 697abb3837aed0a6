//! Length-prefixed JSON frames: 4-byte big-endian length, then that many bytes.

use bytes::{Buf, Bytes, BytesMut};
use serde::Serialize;

use crate::SandboxError;

pub fn encode_frame(message: &impl Serialize) -> Result<Vec<u8>, SandboxError> {
    let body = serde_json::to_vec(message)
        .map_err(|e| SandboxError::Protocol(format!("cannot encode a message: {e}")))?;
    let length = u32::try_from(body.len())
        .map_err(|_| SandboxError::Protocol("a message is larger than 4 GiB".into()))?;
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&length.to_be_bytes());
    frame.extend_from_slice(&body);
    Ok(frame)
}

/// Reassembles frames from arbitrary chunks and refuses any frame above `max_frame`,
/// so a hostile agent cannot make the server buffer without bound.
pub struct FrameDecoder {
    buffer: BytesMut,
    max_frame: usize,
}

impl FrameDecoder {
    pub fn new(max_frame: usize) -> Self {
        FrameDecoder {
            buffer: BytesMut::new(),
            max_frame,
        }
    }

    pub fn push(&mut self, chunk: &[u8]) {
        self.buffer.extend_from_slice(chunk);
    }

    pub fn next_frame(&mut self) -> Result<Option<Bytes>, SandboxError> {
        if self.buffer.len() < 4 {
            return Ok(None);
        }
        let declared = u32::from_be_bytes([
            self.buffer[0],
            self.buffer[1],
            self.buffer[2],
            self.buffer[3],
        ]) as usize;
        if declared > self.max_frame {
            return Err(SandboxError::Protocol(format!(
                "a frame of {declared} bytes exceeds the limit of {} bytes",
                self.max_frame
            )));
        }
        if self.buffer.len() < 4 + declared {
            return Ok(None);
        }
        self.buffer.advance(4);
        Ok(Some(self.buffer.split_to(declared).freeze()))
    }

    #[cfg(test)]
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_survive_arbitrary_chunking() {
        let mut stream = encode_frame(&serde_json::json!({"type": "ready"})).expect("encodes");
        stream.extend(encode_frame(&serde_json::json!({"type": "x", "n": 1})).expect("encodes"));
        let mut decoder = FrameDecoder::new(1024);
        let mut frames = Vec::new();
        for byte in stream {
            decoder.push(&[byte]);
            while let Some(frame) = decoder.next_frame().expect("valid") {
                frames.push(frame);
            }
        }
        assert_eq!(frames.len(), 2);
        assert_eq!(&frames[0][..], br#"{"type":"ready"}"#);
        assert_eq!(decoder.buffered(), 0);
    }

    #[test]
    fn oversized_frames_are_refused_before_buffering() {
        let mut decoder = FrameDecoder::new(16);
        decoder.push(&1_000_000u32.to_be_bytes());
        assert!(decoder.next_frame().is_err());
    }
}
