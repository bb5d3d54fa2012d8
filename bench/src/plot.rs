//! The latency-versus-load plot: p50 and p99 against the offered rate for a (Envoy alone),
//! b (+ no-op ext_proc) and c (+ router), from the open-loop steps, as SVG.
//!
//! This is the picture that shows where each set-up saturates (the knee where the
//! coordinated-omission-correct latency leaves the floor), which one number per scenario cannot.

use std::path::Path;

use plotters::prelude::*;

use crate::loadgen::Mode;
use crate::scenarios::ScenarioReport;

#[derive(Debug, thiserror::Error)]
#[error("plot: {0}")]
pub struct PlotError(String);

/// (offered rate, p50 ms, p99 ms).
type Point = (f64, f64, f64);

/// The points of each open-loop step.
fn points(s: &ScenarioReport) -> Vec<Point> {
    let mut v: Vec<Point> = s
        .steps
        .iter()
        .filter_map(|st| match st.result.mode {
            Mode::Open { rate, .. } if st.result.completed > 0 => Some((
                rate,
                st.result.latency.p50_us / 1000.0,
                st.result.latency.p99_us / 1000.0,
            )),
            _ => None,
        })
        .collect();
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    v
}

pub fn write(path: &Path, scenarios: &[ScenarioReport]) -> Result<(), PlotError> {
    let e = |e: &dyn std::fmt::Display| PlotError(e.to_string());
    let series: Vec<(&str, RGBColor, Vec<Point>)> = [
        ("a", "a: Envoy alone", RGBColor(0x1f, 0x77, 0xb4)),
        ("b", "b: + no-op ext_proc", RGBColor(0xff, 0x7f, 0x0e)),
        ("c", "c: + router", RGBColor(0x2c, 0xa0, 0x2c)),
    ]
    .into_iter()
    .filter_map(|(id, name, color)| {
        let s = scenarios.iter().find(|s| s.id == id)?;
        let p = points(s);
        (!p.is_empty()).then_some((name, color, p))
    })
    .collect();
    let all = series.iter().flat_map(|(_, _, p)| p.iter());
    let x_max = all.clone().map(|p| p.0).fold(1.0, f64::max) * 1.05;
    let y_max = all.clone().map(|p| p.2.max(p.1)).fold(0.01, f64::max) * 1.5;
    let y_min = all.map(|p| p.1.min(p.2)).fold(y_max, f64::min).max(0.001) / 1.5;

    let root = SVGBackend::new(path, (960, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|x| e(&x))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Latency vs offered load (open loop, from intended send time)",
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..x_max, (y_min..y_max).log_scale())
        .map_err(|x| e(&x))?;
    chart
        .configure_mesh()
        .x_desc("offered rate (requests/s)")
        .y_desc("latency (ms, log scale)")
        .draw()
        .map_err(|x| e(&x))?;
    for (name, color, p) in &series {
        let color = *color;
        chart
            .draw_series(
                LineSeries::new(p.iter().map(|q| (q.0, q.1)), color.stroke_width(2)).point_size(3),
            )
            .map_err(|x| e(&x))?
            .label(format!("{name} p50"))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart
            .draw_series(DashedLineSeries::new(
                p.iter().map(|q| (q.0, q.2)),
                6,
                4,
                color.stroke_width(1),
            ))
            .map_err(|x| e(&x))?
            .label(format!("{name} p99 (dashed)"))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(1))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|x| e(&x))?;
    root.present().map_err(|x| e(&x))?;
    Ok(())
}
