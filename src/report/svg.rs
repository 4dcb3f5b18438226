//! Inline SVG charts for the report: bars, histograms, a sunburst, a heatmap and lines.
//! Plain SVG elements with `<title>` tooltips; no script. Coordinates are written with
//! one decimal so the same data gives the same bytes.

use super::html::Markup;
use crate::html;

/// A colour of a fixed palette (colour-blind friendly, after Okabe and Ito).
pub fn colour(i: usize) -> &'static str {
    const P: [&str; 8] = [
        "#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#999999",
    ];
    P[i % P.len()]
}

fn open(w: f64, h: f64, label: &str) -> Markup {
    html!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {:.0} {:.0}" width="{:.0}" height="{:.0}" role="img" aria-label="{}">"#,
        w,
        h,
        w,
        h,
        (label)
    )
}

/// A round number of at least `x` (1, 2 or 5 × a power of ten) for axis tops.
fn nice_ceiling(x: f64) -> f64 {
    if x <= 0.0 {
        return 1.0;
    }
    let p = 10f64.powf(x.log10().floor());
    for m in [1.0, 2.0, 5.0, 10.0] {
        if m * p >= x {
            return m * p;
        }
    }
    10.0 * p
}

/// Vertical bars, one per (label, value), with a y axis and the value on hover.
pub fn bars(label: &str, data: &[(String, f64)], colour_of: impl Fn(usize) -> String) -> Markup {
    let (w, h, left, bottom, top) = (560.0, 240.0, 44.0, 46.0, 12.0);
    let mut s = open(w, h, label);
    // Four gridlines at a round step.
    let max = 4.0 * nice_ceiling(data.iter().map(|d| d.1).fold(0.0, f64::max) / 4.0);
    let plot_h = h - bottom - top;
    let slot = (w - left - 8.0) / data.len().max(1) as f64;
    for k in 0..=4 {
        let v = max * k as f64 / 4.0;
        let y = top + plot_h * (1.0 - k as f64 / 4.0);
        s.push(html!(r##"<line x1="{:.1}" x2="{:.1}" y1="{:.1}" y2="{:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" font-size="10" text-anchor="end">{}</text>"##, left, w - 8.0, y, y, left - 4.0, y + 3.0, trim_number(v)));
    }
    let rotate = data.iter().any(|d| d.0.chars().count() as f64 * 6.5 > slot);
    for (i, (name, v)) in data.iter().enumerate() {
        let bh = plot_h * v / max;
        let x = left + slot * i as f64 + slot * 0.1;
        s.push(html!(r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{}: {}</title></rect>"#, x, top + plot_h - bh, slot * 0.8, bh, colour_of(i), (name), trim_number(*v)));
        let cx = x + slot * 0.4;
        let ty = h - bottom + 12.0;
        if rotate {
            s.push(html!(r#"<text x="{:.1}" y="{:.1}" font-size="10" text-anchor="end" transform="rotate(-35 {:.1} {:.1})">{}</text>"#, cx, ty, cx, ty, (name)));
        } else {
            s.push(html!(
                r#"<text x="{:.1}" y="{:.1}" font-size="10" text-anchor="middle">{}</text>"#,
                cx,
                ty,
                (name)
            ));
        }
    }
    s.push(html!("</svg>"));
    s
}

/// Horizontal bars with the value written after each bar.
pub fn hbars(label: &str, data: &[(String, f64)], unit: &str) -> Markup {
    let row = 22.0;
    let (w, left) = (560.0, 170.0);
    let h = (row * data.len() as f64 + 10.0).max(60.0);
    let mut s = open(w, h, label);
    let max = data.iter().map(|d| d.1).fold(0.0, f64::max).max(1e-9);
    for (i, (name, v)) in data.iter().enumerate() {
        let y = 5.0 + row * i as f64;
        let bw = (w - left - 80.0) * v / max;
        s.push(html!(r#"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end">{}</text><rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{}: {} {}</title></rect><text x="{:.1}" y="{:.1}" font-size="11">{} {}</text>"#, left - 6.0, y + 14.0, (name), left, y + 3.0, bw, row - 6.0, colour(i), (name), trim_number(*v), (unit), left + bw + 4.0, y + 14.0, trim_number(*v), (unit)));
    }
    s.push(html!("</svg>"));
    s
}

/// One verb of the sunburst: its name, count, and its objects with their counts.
pub type VerbRing = (String, f64, Vec<(String, f64)>);

/// Figure 2 of the Self-Instruct paper: verbs on the inner ring, each verb's most
/// common objects on the outer ring, angles by count.
pub fn sunburst(label: &str, verbs: &[VerbRing]) -> Markup {
    let (w, h) = (560.0, 560.0);
    let (cx, cy) = (w / 2.0, h / 2.0);
    let (r0, r1, r2) = (70.0, 160.0, 268.0);
    let total: f64 = verbs.iter().map(|v| v.1).sum::<f64>().max(1e-9);
    let mut s = open(w, h, label);
    let mut a = -std::f64::consts::FRAC_PI_2;
    for (i, (verb, n, nouns)) in verbs.iter().enumerate() {
        let span = std::f64::consts::TAU * n / total;
        let c = colour(i);
        s.push(html!(
            r##"<path d="{}" fill="{}" stroke="#fff"><title>{}: {}</title></path>"##,
            arc(cx, cy, r0, r1, a, a + span),
            c,
            (verb),
            trim_number(*n)
        ));
        label_at(
            &mut s,
            cx,
            cy,
            (r0 + r1) / 2.0,
            a + span / 2.0,
            span,
            r1 - r0,
            verb,
            12.0,
        );
        let mut b = a;
        for (noun, m) in nouns {
            let sub = std::f64::consts::TAU * m / total;
            s.push(html!(r##"<path d="{}" fill="{}" fill-opacity="0.55" stroke="#fff"><title>{} {}: {}</title></path>"##, arc(cx, cy, r1, r2, b, b + sub), c, (verb), (noun), trim_number(*m)));
            label_at(
                &mut s,
                cx,
                cy,
                (r1 + r2) / 2.0,
                b + sub / 2.0,
                sub,
                r2 - r1,
                noun,
                10.0,
            );
            b += sub;
        }
        a += span;
    }
    s.push(html!("</svg>"));
    s
}

/// A ring sector from angle `a0` to `a1` between radii `ri` and `ro`.
fn arc(cx: f64, cy: f64, ri: f64, ro: f64, a0: f64, a1: f64) -> String {
    // A full circle cannot be one arc: stop just short.
    let a1 = if a1 - a0 >= std::f64::consts::TAU {
        a0 + std::f64::consts::TAU - 1e-4
    } else {
        a1
    };
    let large = if a1 - a0 > std::f64::consts::PI { 1 } else { 0 };
    let p = |r: f64, a: f64| (cx + r * a.cos(), cy + r * a.sin());
    let (x0, y0) = p(ro, a0);
    let (x1, y1) = p(ro, a1);
    let (x2, y2) = p(ri, a1);
    let (x3, y3) = p(ri, a0);
    format!(
        "M{x0:.1},{y0:.1}A{ro:.1},{ro:.1} 0 {large} 1 {x1:.1},{y1:.1}L{x2:.1},{y2:.1}A{ri:.1},{ri:.1} 0 {large} 0 {x3:.1},{y3:.1}Z"
    )
}

/// A radial label in a sector, when the sector is wide enough to hold it.
#[allow(clippy::too_many_arguments)]
fn label_at(
    s: &mut Markup,
    cx: f64,
    cy: f64,
    r: f64,
    a: f64,
    span: f64,
    depth: f64,
    text: &str,
    size: f64,
) {
    if span * r < size * 1.1 {
        return;
    }
    let max_chars = (depth / (size * 0.6)) as usize;
    let t: String = if text.chars().count() > max_chars {
        text.chars()
            .take(max_chars.saturating_sub(1))
            .collect::<String>()
            + "…"
    } else {
        text.to_string()
    };
    let (x, y) = (cx + r * a.cos(), cy + r * a.sin());
    let mut deg = a.to_degrees();
    // Keep text upright.
    if a.cos() < 0.0 {
        deg += 180.0;
    }
    s.push(html!(r#"<text x="{:.1}" y="{:.1}" font-size="{:.0}" text-anchor="middle" dominant-baseline="middle" transform="rotate({:.1} {:.1} {:.1})">{}</text>"#, x, y, size, deg, x, y, (&t)));
}

/// Rows × columns of cells shaded by a share in [0, 1], each with its text.
pub fn heatmap(
    label: &str,
    rows: &[String],
    cols: &[String],
    cell: impl Fn(usize, usize) -> Option<(f64, String)>,
) -> Markup {
    let (left, top, cw, ch) = (170.0, 26.0, 90.0, 26.0);
    let w = left + cw * cols.len() as f64 + 10.0;
    let h = top + ch * rows.len() as f64 + 10.0;
    let mut s = open(w, h, label);
    for (j, c) in cols.iter().enumerate() {
        s.push(html!(
            r#"<text x="{:.1}" y="18" font-size="11" text-anchor="middle">{}</text>"#,
            left + cw * (j as f64 + 0.5),
            (c)
        ));
    }
    for (i, r) in rows.iter().enumerate() {
        let y = top + ch * i as f64;
        s.push(html!(
            r#"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end">{}</text>"#,
            left - 6.0,
            y + 17.0,
            (r)
        ));
        for (j, col) in cols.iter().enumerate() {
            let x = left + cw * j as f64;
            match cell(i, j) {
                Some((share, text)) => {
                    s.push(html!(r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="#009E73" fill-opacity="{:.2}" stroke="#fff"><title>{} · {}: {}</title></rect><text x="{:.1}" y="{:.1}" font-size="11" text-anchor="middle">{}</text>"##, x, y, cw - 2.0, ch - 2.0, 0.1 + 0.9 * share.clamp(0.0, 1.0), (r), (col), (&text), x + cw / 2.0, y + 17.0, (&text)));
                }
                None => {
                    s.push(html!(r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="#f3f3f3" stroke="#fff"/>"##, x, y, cw - 2.0, ch - 2.0));
                }
            }
        }
    }
    s.push(html!("</svg>"));
    s
}

/// Line series over shared x values (`None` leaves a gap), each with its own y range
/// scaled to [0, max]; a legend names them.
pub fn lines(label: &str, xs: &[String], series: &[(String, Vec<Option<f64>>)]) -> Markup {
    let (w, h, left, bottom, top) = (560.0, 240.0, 44.0, 30.0, 30.0);
    let mut s = open(w, h, label);
    let plot_w = w - left - 16.0;
    let plot_h = h - top - bottom;
    let step = plot_w / (xs.len().max(2) - 1) as f64;
    for (j, x) in xs.iter().enumerate() {
        s.push(html!(
            r#"<text x="{:.1}" y="{:.1}" font-size="10" text-anchor="middle">{}</text>"#,
            left + step * j as f64,
            h - bottom + 14.0,
            (x)
        ));
    }
    s.push(html!(
        r##"<line x1="{:.1}" x2="{:.1}" y1="{:.1}" y2="{:.1}" stroke="#999"/>"##,
        left,
        left + plot_w,
        top + plot_h,
        top + plot_h
    ));
    for (k, (name, ys)) in series.iter().enumerate() {
        let max = nice_ceiling(ys.iter().flatten().fold(0.0, |a: f64, b| a.max(*b)));
        let mut d = Markup::new();
        let mut pen_up = true;
        for (j, y) in ys.iter().enumerate() {
            match y {
                Some(v) => {
                    let px = left + step * j as f64;
                    let py = top + plot_h * (1.0 - v / max);
                    d.push(html!(
                        "{}{:.1},{:.1}",
                        if pen_up { "M" } else { "L" },
                        px,
                        py
                    ));
                    s.push(html!(r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{}"><title>{} at {}: {}</title></circle>"#, px, py, colour(k), (name), (&xs[j]), trim_number(*v)));
                    pen_up = false;
                }
                None => pen_up = true,
            }
        }
        s.push(html!(r#"<path d="{}" fill="none" stroke="{}" stroke-width="2"/><rect x="{:.1}" y="8" width="10" height="10" fill="{}"/><text x="{:.1}" y="17" font-size="10">{} (0–{})</text>"#, d, colour(k), left + 128.0 * k as f64, colour(k), left + 128.0 * k as f64 + 13.0, (name), trim_number(max)));
    }
    s.push(html!("</svg>"));
    s
}

/// A number as people write it: integers without decimals, others with up to 3.
pub fn trim_number(v: f64) -> String {
    if v == v.trunc() && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        let t = format!("{v:.3}");
        t.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_numbers_trimmed() {
        assert_eq!(
            super::super::html::escape(r#"<a href="x">&'"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        assert_eq!(trim_number(3.0), "3");
        assert_eq!(trim_number(0.25), "0.25");
        assert_eq!(trim_number(1.0 / 3.0), "0.333");
        assert_eq!(nice_ceiling(7.0), 10.0);
        assert_eq!(nice_ceiling(0.3), 0.5);
        // Counts get whole-number gridlines.
        let b = bars("x", &[("a".into(), 4.0)], |i| colour(i).into());
        assert!(b.contains(">3</text>") && !b.contains("3.75"));
    }

    #[test]
    fn charts_are_closed_svg_with_one_shape_per_datum() {
        let b = bars("x", &[("a<b".into(), 2.0), ("c".into(), 3.0)], |i| {
            colour(i).into()
        });
        assert!(b.starts_with("<svg") && b.ends_with("</svg>"));
        assert_eq!(b.matches("<rect").count(), 2);
        assert!(b.contains("a&lt;b"));
        let sb = sunburst(
            "v",
            &[
                ("write".into(), 3.0, vec![("poem".into(), 2.0)]),
                ("list".into(), 1.0, vec![]),
            ],
        );
        assert_eq!(sb.matches("<path").count(), 3);
        let full = sunburst("v", &[("write".into(), 1.0, vec![("poem".into(), 1.0)])]);
        assert!(!full.contains("NaN"));
        let l = lines(
            "t",
            &["1".into(), "2".into()],
            &[("s".into(), vec![Some(1.0), None])],
        );
        assert_eq!(l.matches("<circle").count(), 1);
    }
}
