//! teacher-kernels' block decoders against candle's, on random blocks of every type.

use candle_core::quantized::{ggml_file::qtensor_from_ggml, GgmlDType};
use candle_core::Device;
use teacher_kernels::quant::dequantize_row;
use teacher_kernels::QType;

#[test]
fn decoders_agree_with_candle() {
    let types = [
        (QType::Q4_0, GgmlDType::Q4_0),
        (QType::Q4_1, GgmlDType::Q4_1),
        (QType::Q5_0, GgmlDType::Q5_0),
        (QType::Q5_1, GgmlDType::Q5_1),
        (QType::Q8_0, GgmlDType::Q8_0),
        (QType::Q4K, GgmlDType::Q4K),
        (QType::Q5K, GgmlDType::Q5K),
        (QType::Q6K, GgmlDType::Q6K),
        (QType::F16, GgmlDType::F16),
    ];
    for (ours, theirs) in types {
        let (rows, cols) = (3, 512);
        let data = teacher_kernels::matmul::tests_support::random_matrix(ours, rows, cols, 5);
        let qt = qtensor_from_ggml(theirs, &data, vec![rows, cols], &Device::Cpu).unwrap();
        let want = qt
            .dequantize(&Device::Cpu)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let mut got = vec![0f32; rows * cols];
        for r in 0..rows {
            let rb = ours.row_bytes(cols);
            dequantize_row(
                ours,
                &data[r * rb..(r + 1) * rb],
                cols,
                &mut got[r * cols..(r + 1) * cols],
            );
        }
        for i in 0..got.len() {
            assert!(
                (got[i] - want[i]).abs() <= 1e-6 * want[i].abs().max(1.0),
                "{ours:?} element {i}: teacher {} candle {}",
                got[i],
                want[i]
            );
        }
    }
}
