use teacher_kernels::matmul::{matmul_with, tests_support::random_matrix};
use teacher_kernels::{QMatrix, QType};
fn main() {
    let (n, k) = (32768, 2048);
    let x: Vec<f32> = (0..k).map(|i| (i % 17) as f32 - 8.0).collect();
    let isa = teacher_kernels::matmul::detected_isa();
    let only = std::env::var("ONLY").ok();
    for t in [QType::Q4_1, QType::Q4K, QType::Q8_0, QType::Q6K, QType::Q5_0] {
        if only.as_deref().is_some_and(|o| o != format!("{t:?}")) { continue; }
        let data = random_matrix(t, n, k, 3);
        let w = QMatrix::new(t, n, k, &data).unwrap();
        let mut y = vec![0f32; n];
        let mut best = 0f64;
        for _ in 0..3 {
            let t0 = std::time::Instant::now();
            for _ in 0..30 { matmul_with(&w, &x, 1, &mut y, isa); }
            let dt = t0.elapsed().as_secs_f64() / 30.0;
            best = best.max(data.len() as f64 / dt / 1e9);
        }
        println!("{t:?} {isa:?}: {best:.2} GB/s");
    }
}
