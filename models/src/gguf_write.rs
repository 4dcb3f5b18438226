//! teacher's GGUF writer (format version 3): metadata, then tensors given as raw ggml
//! blocks, each tensor's bytes produced on demand so a multi-gigabyte model is never
//! held in memory. Written to a temporary file next to the target and renamed into
//! place, so a failure never leaves a half-written model behind.
//!
//! Used for synthetic models (`synth.rs`: benchmarks and device checks of real shapes)
//! and by tests that build tiny models of every architecture.

use crate::error::{Error, Result};
use crate::gguf::type_layout;
use candle_core::quantized::gguf_file::Value;
use std::io::{BufWriter, Write};
use std::path::Path;

const ALIGNMENT: u64 = 32;

/// One tensor's header entry: name, ggml type id and row-major shape (outermost first).
#[derive(Debug, Clone)]
pub struct TensorSpec {
    pub name: String,
    pub type_id: u32,
    pub shape: Vec<usize>,
}

impl TensorSpec {
    pub fn new(name: impl Into<String>, type_id: u32, shape: &[usize]) -> Self {
        TensorSpec {
            name: name.into(),
            type_id,
            shape: shape.to_vec(),
        }
    }

    /// Bytes of data, or None for an unknown type or a size that is not whole blocks.
    pub fn nbytes(&self) -> Option<usize> {
        let l = type_layout(self.type_id)?;
        let n = self
            .shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))?;
        if n % l.block_elems != 0 {
            return None;
        }
        (n / l.block_elems).checked_mul(l.block_bytes)
    }
}

/// Write a GGUF file. `data(i, buf)` fills `buf` (cleared, then to be extended) with
/// tensor i's bytes; it must produce exactly `tensors[i].nbytes()` of them.
pub fn write(
    path: &Path,
    metadata: &[(String, Value)],
    tensors: &[TensorSpec],
    mut data: impl FnMut(usize, &mut Vec<u8>) -> Result<()>,
) -> Result<()> {
    let io = |e: std::io::Error| Error::Model {
        path: path.to_path_buf(),
        what: format!("writing the GGUF file failed: {e}"),
    };
    let mut sizes = Vec::with_capacity(tensors.len());
    for t in tensors {
        sizes.push(t.nbytes().ok_or_else(|| Error::Model {
            path: path.to_path_buf(),
            what: format!(
                "tensor `{}`: type {} with shape {:?} is not whole blocks of a known type",
                t.name, t.type_id, t.shape
            ),
        })?);
    }
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty());
    let tmp = tempfile::NamedTempFile::new_in(dir.unwrap_or(Path::new("."))).map_err(io)?;
    {
        let mut w = BufWriter::with_capacity(1 << 20, tmp.as_file());
        w.write_all(b"GGUF").map_err(io)?;
        w.write_all(&3u32.to_le_bytes()).map_err(io)?;
        w.write_all(&(tensors.len() as u64).to_le_bytes())
            .map_err(io)?;
        w.write_all(&(metadata.len() as u64).to_le_bytes())
            .map_err(io)?;
        let mut header = Vec::new();
        for (k, v) in metadata {
            put_string(&mut header, k);
            header.extend_from_slice(&value_type(v).to_le_bytes());
            put_value(&mut header, v);
        }
        let mut offset = 0u64;
        for (t, &n) in tensors.iter().zip(&sizes) {
            put_string(&mut header, &t.name);
            header.extend_from_slice(&(t.shape.len() as u32).to_le_bytes());
            // GGUF lists dimensions innermost first.
            for &d in t.shape.iter().rev() {
                header.extend_from_slice(&(d as u64).to_le_bytes());
            }
            header.extend_from_slice(&t.type_id.to_le_bytes());
            header.extend_from_slice(&offset.to_le_bytes());
            offset = (offset + n as u64).div_ceil(ALIGNMENT) * ALIGNMENT;
        }
        w.write_all(&header).map_err(io)?;
        let pos = 24 + header.len() as u64;
        let pad = pos.div_ceil(ALIGNMENT) * ALIGNMENT - pos;
        w.write_all(&vec![0u8; pad as usize]).map_err(io)?;
        let mut buf = Vec::new();
        for (i, &n) in sizes.iter().enumerate() {
            buf.clear();
            data(i, &mut buf)?;
            if buf.len() != n {
                return Err(Error::Model {
                    path: path.to_path_buf(),
                    what: format!(
                        "tensor `{}`: {} bytes given, its type and shape need {n}",
                        tensors[i].name,
                        buf.len()
                    ),
                });
            }
            w.write_all(&buf).map_err(io)?;
            let end = n as u64;
            let pad = end.div_ceil(ALIGNMENT) * ALIGNMENT - end;
            w.write_all(&vec![0u8; pad as usize]).map_err(io)?;
        }
        w.flush().map_err(io)?;
    }
    tmp.persist(path).map_err(|e| io(e.error))?;
    Ok(())
}

fn put_string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn value_type(v: &Value) -> u32 {
    match v {
        Value::U8(_) => 0,
        Value::I8(_) => 1,
        Value::U16(_) => 2,
        Value::I16(_) => 3,
        Value::U32(_) => 4,
        Value::I32(_) => 5,
        Value::F32(_) => 6,
        Value::Bool(_) => 7,
        Value::String(_) => 8,
        Value::Array(_) => 9,
        Value::U64(_) => 10,
        Value::I64(_) => 11,
        Value::F64(_) => 12,
    }
}

fn put_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::U8(x) => out.push(*x),
        Value::I8(x) => out.push(*x as u8),
        Value::U16(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I16(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::U32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::F32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::Bool(x) => out.push(u8::from(*x)),
        Value::String(s) => put_string(out, s),
        Value::U64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::F64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::Array(items) => {
            // An empty array is written as an array of strings (the type of every
            // array GGUF files leave empty, such as merges).
            let t = items.first().map_or(8, value_type);
            out.extend_from_slice(&t.to_le_bytes());
            out.extend_from_slice(&(items.len() as u64).to_le_bytes());
            for it in items {
                put_value(out, it);
            }
        }
    }
}
