//! The Metal kernels cannot be compiled here (Metal's compiler runs on macOS only), so
//! this checks what can be checked without it: the Metal prelude followed by
//! `forward.h` — exactly the source the Metal engine compiles — is parsed and
//! type-checked as C++ against a small stand-in for `<metal_stdlib>` (address spaces
//! as empty words, the few MSL functions the prelude uses with their MSL signatures).
//! It catches a broken macro, a parameter list that does not expand, a helper the
//! prelude lacks or misnames; not Metal's own rules (address spaces, MSL keywords).

use std::path::Path;
use std::process::Command;

const STAND_IN: &str = r#"
#include <cmath>
#include <cstring>
#define kernel
#define device
#define constant const
#define thread
#define threadgroup static
namespace metal {
typedef unsigned char uchar;
typedef unsigned short ushort;
typedef unsigned int uint;
typedef unsigned long ulong;
struct uint3 { uint x, y, z; };
typedef _Float16 half;
enum class mem_flags { mem_none = 0, mem_device = 1, mem_threadgroup = 2 };
inline mem_flags operator|(mem_flags a, mem_flags b) { return (mem_flags)((int)a | (int)b); }
inline void threadgroup_barrier(mem_flags) {}
template <class T> T simd_shuffle(T v, ushort) { return v; }
template <class T> T simd_shuffle_xor(T v, ushort) { return v; }
template <class To, class From> To as_type(From f) {
    static_assert(sizeof(To) == sizeof(From), "as_type needs equal sizes");
    To t;
    std::memcpy(&t, &f, sizeof t);
    return t;
}
namespace precise {
inline float divide(float a, float b) { return a / b; }
inline float sqrt(float x) { return std::sqrt(x); }
}
using std::fabs;
using std::fma;
using std::fmax;
using std::isnan;
}
"#;

#[test]
fn metal_source_expands_and_type_checks() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let src = std::fs::read_to_string(root.join("metal/prelude.metal")).unwrap()
        + &std::fs::read_to_string(root.join("gpu/forward.h")).unwrap();
    let dir = std::env::temp_dir().join(format!("teacher-metal-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("metal_stdlib"), STAND_IN).unwrap();
    let file = dir.join("forward.metal.cpp");
    std::fs::write(&file, &src).unwrap();
    let out = match Command::new("g++")
        .args([
            "-std=c++17",
            "-fsyntax-only",
            "-Wall",
            "-Wno-attributes",
            "-Wno-unused",
        ])
        .arg("-I")
        .arg(&dir)
        .arg(&file)
        .output()
    {
        Ok(o) => o,
        Err(e) => {
            eprintln!("skipped: no g++ ({e})");
            return;
        }
    };
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "the Metal source does not type-check:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
