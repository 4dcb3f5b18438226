//! A defensive GGUF reader over a memory-mapped file.
//!
//! GGUF files come from anywhere, so every length and count read from the file is
//! checked against the bytes that remain before anything is allocated, every tensor's
//! data range is checked against the file size, and all failures name the file and
//! what was wrong. Tensor data is never copied at open time: it stays in the mmap.

use crate::error::{Error, Result};
use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::Device;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 4] = b"GGUF";
/// ggml's GGML_MAX_DIMS.
const MAX_DIMS: u32 = 4;
/// Arrays of arrays exist in the format; deeper nesting never does in real files.
const MAX_ARRAY_DEPTH: usize = 2;

/// One tensor's entry in the GGUF header.
#[derive(Debug, Clone)]
pub struct TensorEntry {
    pub name: String,
    /// The ggml type id (`enum ggml_type`); see [`type_layout`].
    pub type_id: u32,
    /// Row-major shape (outermost first), as candle uses it; GGUF stores it reversed.
    pub shape: Vec<usize>,
    /// Offset of the data from the start of the tensor data section.
    pub offset: u64,
    /// Which file of a split model holds the data (0: the first, opened one).
    pub part: usize,
    pub nbytes: usize,
}

impl TensorEntry {
    pub fn elem_count(&self) -> usize {
        self.shape.iter().product()
    }

    /// llama.cpp's name of the tensor's type (`Q4_K`, `IQ4_XS`, …).
    pub fn type_name(&self) -> &'static str {
        type_layout(self.type_id).map_or("?", |l| l.name)
    }
}

/// An opened GGUF file: parsed header, metadata and tensor directory, data in the mmap.
pub struct GgufFile {
    path: PathBuf,
    mmap: memmap2::Mmap,
    pub version: u32,
    pub metadata: BTreeMap<String, Value>,
    pub tensors: Vec<TensorEntry>,
    index: HashMap<String, usize>,
    pub data_offset: u64,
    /// The other files of a split model (`NAME-00002-of-00003.gguf`, …), in order.
    parts: Vec<Part>,
}

/// A further file of a split model: its map and where its tensor data starts.
struct Part {
    mmap: memmap2::Mmap,
    data_offset: u64,
}

impl std::fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufFile")
            .field("path", &self.path)
            .field("version", &self.version)
            .field("tensors", &self.tensors.len())
            .finish()
    }
}

impl GgufFile {
    pub fn open(path: &Path) -> Result<Self> {
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let meta = file.metadata().map_err(|e| Error::io(path, e))?;
        if meta.is_dir() {
            return Err(Error::io(
                path,
                std::io::Error::other("is a directory, not a GGUF file"),
            ));
        }
        // SAFETY: the map is read-only; a file truncated by another process while mapped
        // would fault, which is the same contract every mmap-based model loader has.
        let mmap = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        let mut g = Self::parse(path.to_path_buf(), mmap)?;
        g.open_splits()?;
        Ok(g)
    }

    /// A model split by llama.cpp's `gguf-split` (`NAME-00001-of-00003.gguf`, …): the
    /// first file holds the metadata, every file tensors; they are opened as one model.
    fn open_splits(&mut self) -> Result<()> {
        let count = self.get_uint("split.count")?.unwrap_or(1);
        if count <= 1 {
            return Ok(());
        }
        let no = self.get_uint("split.no")?.unwrap_or(0);
        let name = self
            .path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let tail = format!("-{:05}-of-{count:05}.gguf", no + 1);
        let prefix = name.strip_suffix(&tail).ok_or_else(|| {
            self.md_err(
                "split.count",
                format!(
                    "says this is part {} of {count}, but the file is not named PREFIX{tail}\nhint: keep the names gguf-split gave the parts",
                    no + 1
                ),
            )
        })?;
        let part_path = |i: u64| {
            self.path
                .with_file_name(format!("{prefix}-{:05}-of-{count:05}.gguf", i + 1))
        };
        if no != 0 {
            return Err(self.md_err(
                "split.no",
                format!(
                    "is {no}: this is part {} of a split model\nhint: open the first part, `{}`",
                    no + 1,
                    part_path(0).display()
                ),
            ));
        }
        if count > 10_000 {
            return Err(self.md_err("split.count", format!("is {count}, not a sensible count")));
        }
        for i in 1..count {
            let p = part_path(i);
            let g = GgufFile::open_one(&p).map_err(|e| match e {
                Error::Io { path, source } if source.kind() == std::io::ErrorKind::NotFound => {
                    Error::Io {
                        path,
                        source: std::io::Error::other(format!(
                            "part {} of {count} of the split model `{}` is missing",
                            i + 1,
                            self.path.display()
                        )),
                    }
                }
                other => other,
            })?;
            if g.get_uint("split.no")? != Some(i) || g.get_uint("split.count")? != Some(count) {
                return Err(g.md_err(
                    "split.no",
                    format!("does not say part {} of {count}", i + 1),
                ));
            }
            let part = self.parts.len() + 1;
            for mut t in g.tensors {
                t.part = part;
                if self
                    .index
                    .insert(t.name.clone(), self.tensors.len())
                    .is_some()
                {
                    return Err(tensor_err(
                        &p,
                        &t.name,
                        "appears in two parts of the split model",
                    ));
                }
                self.tensors.push(t);
            }
            self.parts.push(Part {
                mmap: g.mmap,
                data_offset: g.data_offset,
            });
        }
        if let Some(n) = self.get_uint("split.tensors.count")? {
            if n != self.tensors.len() as u64 {
                return Err(self.md_err(
                    "split.tensors.count",
                    format!("is {n}, but the parts hold {} tensors", self.tensors.len()),
                ));
            }
        }
        Ok(())
    }

    /// A GGUF held in memory (fuzzing, tests): parsed exactly as a file is; split
    /// models are not followed.
    pub fn from_bytes(name: &str, bytes: &[u8]) -> Result<Self> {
        let path = PathBuf::from(name);
        if bytes.is_empty() {
            return Err(Error::NotGguf {
                path,
                found: String::new(),
            });
        }
        let mut m = memmap2::MmapMut::map_anon(bytes.len()).map_err(|e| Error::io(&path, e))?;
        m.copy_from_slice(bytes);
        let mmap = m.make_read_only().map_err(|e| Error::io(&path, e))?;
        Self::parse(path, mmap)
    }

    /// One file, without following splits.
    fn open_one(path: &Path) -> Result<Self> {
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        // SAFETY: as in `open`.
        let mmap = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        Self::parse(path.to_path_buf(), mmap)
    }

    fn parse(path: PathBuf, mmap: memmap2::Mmap) -> Result<Self> {
        let mut r = Reader {
            buf: &mmap[..],
            pos: 0,
            path: &path,
        };
        let magic = r.bytes(4).map_err(|_| Error::NotGguf {
            path: path.clone(),
            found: String::from_utf8_lossy(&mmap[..mmap.len().min(4)]).into_owned(),
        })?;
        if magic != MAGIC {
            return Err(Error::NotGguf {
                path: path.clone(),
                found: String::from_utf8_lossy(magic).into_owned(),
            });
        }
        let version = r.u32()?;
        if !(2..=3).contains(&version) {
            return Err(r.malformed(format!(
                "GGUF version {version} is not supported (only versions 2 and 3)"
            )));
        }
        let tensor_count = r.u64()?;
        let kv_count = r.u64()?;
        // A key-value pair takes at least 8 (key length) + 4 (type) + 1 bytes.
        r.check_count(kv_count, 13, "metadata entries")?;
        let mut metadata = BTreeMap::new();
        for _ in 0..kv_count {
            let key = r.string()?;
            let vtype = r.u32()?;
            let value = r
                .value(vtype, 0)
                .map_err(|e| with_context(e, &format!("in metadata value `{key}`")))?;
            metadata.insert(key, value);
        }
        // A tensor entry takes at least 8 (name length) + 4 + 8 + 4 + 8 bytes.
        r.check_count(tensor_count, 32, "tensors")?;
        let mut tensors = Vec::with_capacity(tensor_count as usize);
        let mut index = HashMap::new();
        for _ in 0..tensor_count {
            let name = r.string()?;
            let n_dims = r.u32()?;
            if n_dims == 0 || n_dims > MAX_DIMS {
                return Err(tensor_err(
                    &path,
                    &name,
                    format!("has {n_dims} dimensions (1 to {MAX_DIMS} allowed)"),
                ));
            }
            let mut shape = Vec::with_capacity(n_dims as usize);
            for _ in 0..n_dims {
                let d = r.u64()?;
                shape.push(usize::try_from(d).map_err(|_| {
                    tensor_err(&path, &name, format!("has an absurd dimension {d}"))
                })?);
            }
            shape.reverse();
            let type_id = r.u32()?;
            let layout = type_layout(type_id).ok_or_else(|| {
                tensor_err(
                    &path,
                    &name,
                    format!("has ggml type {type_id}, which teacher cannot read"),
                )
            })?;
            let offset = r.u64()?;
            let elems = shape
                .iter()
                .try_fold(1usize, |acc, &d| acc.checked_mul(d))
                .ok_or_else(|| tensor_err(&path, &name, "has a shape whose size overflows"))?;
            if elems % layout.block_elems != 0 {
                return Err(tensor_err(
                    &path,
                    &name,
                    format!(
                        "has {elems} elements, not a multiple of the {} block size {}",
                        layout.name, layout.block_elems
                    ),
                ));
            }
            let nbytes = (elems / layout.block_elems)
                .checked_mul(layout.block_bytes)
                .ok_or_else(|| tensor_err(&path, &name, "has a byte size that overflows"))?;
            if index.insert(name.clone(), tensors.len()).is_some() {
                return Err(tensor_err(&path, &name, "appears twice in the header"));
            }
            tensors.push(TensorEntry {
                name,
                type_id,
                shape,
                offset,
                part: 0,
                nbytes,
            });
        }
        let alignment = match metadata.get("general.alignment") {
            None => gguf_file::DEFAULT_ALIGNMENT,
            Some(v) => match v.to_u32() {
                Ok(a) if a > 0 && a.is_power_of_two() => a as u64,
                _ => {
                    return Err(
                        r.malformed("`general.alignment` is not a power-of-two u32".to_string())
                    )
                }
            },
        };
        let data_offset = (r.pos as u64).div_ceil(alignment) * alignment;
        let file_len = mmap.len() as u64;
        for t in &tensors {
            let end = data_offset
                .checked_add(t.offset)
                .and_then(|s| s.checked_add(t.nbytes as u64));
            match end {
                Some(end) if end <= file_len => {}
                _ => {
                    return Err(Error::MalformedGguf {
                        path: path.clone(),
                        what: format!(
                        "tensor `{}` needs bytes up to {} but the file has {file_len} (truncated?)",
                        t.name,
                        data_offset
                            .saturating_add(t.offset)
                            .saturating_add(t.nbytes as u64)
                    ),
                    })
                }
            }
            if t.offset % alignment != 0 {
                return Err(tensor_err(
                    &path,
                    &t.name,
                    format!(
                        "starts at offset {} which is not {alignment}-aligned",
                        t.offset
                    ),
                ));
            }
        }
        Ok(GgufFile {
            path,
            mmap,
            version,
            metadata,
            tensors,
            index,
            data_offset,
            parts: Vec::new(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes of the model's file(s).
    pub fn file_size(&self) -> u64 {
        self.mmap.len() as u64 + self.parts.iter().map(|p| p.mmap.len() as u64).sum::<u64>()
    }

    /// Files the model is split into (1 for an ordinary file).
    pub fn split_count(&self) -> usize {
        1 + self.parts.len()
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata.get(key)
    }

    fn md_err(&self, key: &str, what: impl Into<String>) -> Error {
        Error::Metadata {
            path: self.path.clone(),
            key: key.to_string(),
            what: what.into(),
        }
    }

    pub fn require(&self, key: &str) -> Result<&Value> {
        self.get(key)
            .ok_or_else(|| self.md_err(key, "is missing from the file"))
    }

    /// An unsigned integer of any width.
    pub fn get_uint(&self, key: &str) -> Result<Option<u64>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => Ok(Some(value_as_u64(v).ok_or_else(|| {
                self.md_err(key, format!("should be an unsigned integer, found {v:?}"))
            })?)),
        }
    }

    pub fn require_uint(&self, key: &str) -> Result<u64> {
        self.get_uint(key)?
            .ok_or_else(|| self.md_err(key, "is missing from the file"))
    }

    pub fn get_f32(&self, key: &str) -> Result<Option<f32>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::F32(x)) => Ok(Some(*x)),
            Some(Value::F64(x)) => Ok(Some(*x as f32)),
            Some(v) => Err(self.md_err(key, format!("should be a float, found {v:?}"))),
        }
    }

    pub fn get_bool(&self, key: &str) -> Result<Option<bool>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(self.md_err(key, format!("should be a bool, found {v:?}"))),
        }
    }

    pub fn get_str(&self, key: &str) -> Result<Option<&str>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(v) => Err(self.md_err(key, format!("should be a string, found {v:?}"))),
        }
    }

    pub fn get_array(&self, key: &str) -> Result<Option<&[Value]>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(a)) => Ok(Some(a.as_slice())),
            Some(v) => Err(self.md_err(
                key,
                format!("should be an array, found {:?}", v.value_type()),
            )),
        }
    }

    pub fn architecture(&self) -> Result<&str> {
        self.get_str("general.architecture")?
            .ok_or_else(|| self.md_err("general.architecture", "is missing from the file"))
    }

    pub fn tensor(&self, name: &str) -> Option<&TensorEntry> {
        self.index.get(name).map(|&i| &self.tensors[i])
    }

    /// The tensor data section of file `part` of the model (tensor offsets are relative
    /// to its start).
    pub fn data_bytes(&self, part: usize) -> &[u8] {
        match part {
            0 => &self.mmap[self.data_offset as usize..],
            i => {
                let p = &self.parts[i - 1];
                &p.mmap[p.data_offset as usize..]
            }
        }
    }

    /// The raw bytes of a tensor, straight from the map (ranges were checked at open).
    pub fn tensor_bytes(&self, t: &TensorEntry) -> &[u8] {
        let start = t.offset as usize;
        &self.data_bytes(t.part)[start..start + t.nbytes]
    }

    pub fn qtensor(&self, name: &str, device: &Device) -> Result<QTensor> {
        let t = self
            .tensor(name)
            .ok_or_else(|| tensor_err(&self.path, name, "is missing from the file"))?;
        let dtype = dtype_from_u32(t.type_id).ok_or_else(|| {
            tensor_err(
                &self.path,
                name,
                format!("has type {}, which candle cannot hold", t.type_name()),
            )
        })?;
        Ok(candle_core::quantized::ggml_file::qtensor_from_ggml(
            dtype,
            self.tensor_bytes(t),
            t.shape.clone(),
            device,
        )?)
    }

    /// candle's view of this header, for candle-transformers' loaders, built from the
    /// already-validated fields so candle never parses the untrusted bytes itself.
    pub fn to_candle_content(&self) -> gguf_file::Content {
        gguf_file::Content {
            magic: if self.version == 2 {
                gguf_file::VersionedMagic::GgufV2
            } else {
                gguf_file::VersionedMagic::GgufV3
            },
            metadata: self
                .metadata
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            // Tensors of types candle cannot hold are left out (candle's loaders then
            // report them missing).
            tensor_infos: self
                .tensors
                .iter()
                .filter(|t| t.part == 0)
                .filter_map(|t| {
                    Some((
                        t.name.clone(),
                        gguf_file::TensorInfo {
                            ggml_dtype: dtype_from_u32(t.type_id)?,
                            shape: candle_core::Shape::from(t.shape.clone()),
                            offset: t.offset,
                        },
                    ))
                })
                .collect(),
            tensor_data_offset: self.data_offset,
        }
    }

    /// A seekable reader over the whole file (for candle-transformers' loaders).
    pub fn reader(&self) -> std::io::Cursor<&[u8]> {
        std::io::Cursor::new(&self.mmap[..])
    }
}

pub(crate) fn tensor_err(path: &Path, name: &str, what: impl Into<String>) -> Error {
    Error::Tensor {
        path: path.to_path_buf(),
        tensor: name.to_string(),
        what: what.into(),
    }
}

fn with_context(e: Error, ctx: &str) -> Error {
    match e {
        Error::MalformedGguf { path, what } => Error::MalformedGguf {
            path,
            what: format!("{what} {ctx}"),
        },
        other => other,
    }
}

pub fn value_as_u64(v: &Value) -> Option<u64> {
    match *v {
        Value::U8(x) => Some(x as u64),
        Value::U16(x) => Some(x as u64),
        Value::U32(x) => Some(x as u64),
        Value::U64(x) => Some(x),
        Value::I8(x) if x >= 0 => Some(x as u64),
        Value::I16(x) if x >= 0 => Some(x as u64),
        Value::I32(x) if x >= 0 => Some(x as u64),
        Value::I64(x) if x >= 0 => Some(x as u64),
        _ => None,
    }
}

/// ggml's type ids (ggml.h `enum ggml_type`) for the types candle can hold.
pub fn dtype_from_u32(u: u32) -> Option<GgmlDType> {
    Some(match u {
        0 => GgmlDType::F32,
        1 => GgmlDType::F16,
        2 => GgmlDType::Q4_0,
        3 => GgmlDType::Q4_1,
        6 => GgmlDType::Q5_0,
        7 => GgmlDType::Q5_1,
        8 => GgmlDType::Q8_0,
        9 => GgmlDType::Q8_1,
        10 => GgmlDType::Q2K,
        11 => GgmlDType::Q3K,
        12 => GgmlDType::Q4K,
        13 => GgmlDType::Q5K,
        14 => GgmlDType::Q6K,
        15 => GgmlDType::Q8K,
        30 => GgmlDType::BF16,
        _ => return None,
    })
}

/// How a ggml type lays out its data.
#[derive(Debug, Clone, Copy)]
pub struct TypeLayout {
    /// llama.cpp's name, as users know it.
    pub name: &'static str,
    pub block_elems: usize,
    pub block_bytes: usize,
}

/// The layouts of the ggml types teacher can read (ggml.h `enum ggml_type`, block
/// structs in ggml-common.h).
pub fn type_layout(id: u32) -> Option<TypeLayout> {
    let (name, block_elems, block_bytes) = match id {
        0 => ("F32", 1, 4),
        1 => ("F16", 1, 2),
        2 => ("Q4_0", 32, 18),
        3 => ("Q4_1", 32, 20),
        6 => ("Q5_0", 32, 22),
        7 => ("Q5_1", 32, 24),
        8 => ("Q8_0", 32, 34),
        9 => ("Q8_1", 32, 36),
        10 => ("Q2_K", 256, 84),
        11 => ("Q3_K", 256, 110),
        12 => ("Q4_K", 256, 144),
        13 => ("Q5_K", 256, 176),
        14 => ("Q6_K", 256, 210),
        15 => ("Q8_K", 256, 292),
        20 => ("IQ4_NL", 32, 18),
        23 => ("IQ4_XS", 256, 136),
        30 => ("BF16", 1, 2),
        _ => return None,
    };
    Some(TypeLayout {
        name,
        block_elems,
        block_bytes,
    })
}

/// A bounds-checked little-endian cursor.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl<'a> Reader<'a> {
    fn malformed(&self, what: String) -> Error {
        Error::MalformedGguf {
            path: self.path.to_path_buf(),
            what,
        }
    }

    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn bytes(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(self.malformed(format!(
                "unexpected end of file at byte {} (wanted {n} more bytes; truncated?)",
                self.pos
            )));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.bytes(N)?);
        Ok(a)
    }

    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// Refuse a count that could not possibly fit in the rest of the file, before
    /// anything is allocated for it.
    fn check_count(&self, count: u64, min_each: u64, what: &str) -> Result<()> {
        if count.saturating_mul(min_each) > self.remaining() as u64 {
            return Err(self.malformed(format!(
                "header claims {count} {what} at byte {}, more than the file can hold",
                self.pos
            )));
        }
        Ok(())
    }

    fn string(&mut self) -> Result<String> {
        let len = self.u64()?;
        if len > self.remaining() as u64 {
            return Err(self.malformed(format!(
                "string of {len} bytes at byte {} runs past the end of the file",
                self.pos
            )));
        }
        let at = self.pos;
        let b = self.bytes(len as usize)?;
        String::from_utf8(b.to_vec())
            .map_err(|_| self.malformed(format!("string at byte {at} is not valid UTF-8")))
    }

    fn value(&mut self, vtype: u32, depth: usize) -> Result<Value> {
        Ok(match vtype {
            0 => Value::U8(self.array::<1>()?[0]),
            1 => Value::I8(self.array::<1>()?[0] as i8),
            2 => Value::U16(u16::from_le_bytes(self.array()?)),
            3 => Value::I16(i16::from_le_bytes(self.array()?)),
            4 => Value::U32(self.u32()?),
            5 => Value::I32(i32::from_le_bytes(self.array()?)),
            6 => Value::F32(f32::from_le_bytes(self.array()?)),
            7 => match self.array::<1>()?[0] {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                b => return Err(self.malformed(format!("bool with value {b}"))),
            },
            8 => Value::String(self.string()?),
            9 => {
                if depth >= MAX_ARRAY_DEPTH {
                    return Err(self.malformed("arrays nested too deeply".to_string()));
                }
                let elem_type = self.u32()?;
                let count = self.u64()?;
                let min_size = match elem_type {
                    0 | 1 | 7 => 1,
                    2 | 3 => 2,
                    4..=6 => 4,
                    8 | 10..=12 => 8,
                    9 => 12,
                    t => return Err(self.malformed(format!("unknown array element type {t}"))),
                };
                self.check_count(count, min_size, "array elements")?;
                let mut v = Vec::with_capacity(count as usize);
                for _ in 0..count {
                    v.push(self.value(elem_type, depth + 1)?);
                }
                Value::Array(v)
            }
            10 => Value::U64(self.u64()?),
            11 => Value::I64(i64::from_le_bytes(self.array()?)),
            12 => Value::F64(f64::from_le_bytes(self.array()?)),
            t => return Err(self.malformed(format!("unknown metadata value type {t}"))),
        })
    }
}
