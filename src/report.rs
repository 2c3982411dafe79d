//! SVG reports drawn with plotters: buffer occupancy against the watermarks over time with a
//! timeline of losses, recoveries and concealment; and residual loss against network loss.

use std::path::Path;

use plotters::prelude::*;

use crate::sim::Sample;

fn err(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

/// A named line of the timeline plot and how to read it from a sample.
type Series = (&'static str, RGBColor, fn(&Sample) -> f64);

/// Draws buffer occupancy (ms) with both watermarks over time, and below it the cumulative
/// packets lost, rebuilt and frames concealed.
pub fn plot_timeline(
    path: &Path,
    title: &str,
    samples: &[Sample],
    low_ms: f64,
    high_ms: f64,
) -> std::io::Result<()> {
    let root = SVGBackend::new(path, (1000, 700)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let (top, bottom) = root.split_vertically(420);
    let t_max = samples.last().map_or(1.0, |s| s.t).max(0.1);
    let b_max = samples.iter().map(|s| s.buffer_ms).fold(high_ms, f64::max) * 1.1;
    let mut c = ChartBuilder::on(&top)
        .caption(title, ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..t_max, 0.0..b_max)
        .map_err(err)?;
    c.configure_mesh()
        .x_desc("time (s)")
        .y_desc("buffered audio (ms)")
        .draw()
        .map_err(err)?;
    c.draw_series(LineSeries::new(
        samples.iter().map(|s| (s.t, s.buffer_ms)),
        &BLUE,
    ))
    .map_err(err)?
    .label("buffer (fullest substream)")
    .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
    for (v, name, color) in [
        (low_ms, "low-water mark", GREEN),
        (high_ms, "high-water mark", RED),
    ] {
        c.draw_series(LineSeries::new(
            vec![(0.0, v), (t_max, v)],
            color.stroke_width(2),
        ))
        .map_err(err)?
        .label(name)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    c.draw_series(
        samples
            .iter()
            .filter(|s| s.paused)
            .map(|s| Circle::new((s.t, b_max * 0.97), 2, MAGENTA.filled())),
    )
    .map_err(err)?
    .label("sender paused")
    .legend(|(x, y)| Circle::new((x + 10, y), 3, MAGENTA.filled()));
    c.configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;

    let y_max = samples
        .iter()
        .map(|s| (s.packets_lost.max(s.packets_rebuilt) as f64).max(s.concealed_ms))
        .fold(1.0, f64::max)
        * 1.1;
    let mut c2 = ChartBuilder::on(&bottom)
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..t_max, 0.0..y_max)
        .map_err(err)?;
    c2.configure_mesh()
        .x_desc("time (s)")
        .y_desc("cumulative")
        .draw()
        .map_err(err)?;
    let series: [Series; 3] = [
        ("packets lost on the wire", RED, |s| s.packets_lost as f64),
        ("packets rebuilt by FEC", GREEN, |s| {
            s.packets_rebuilt as f64
        }),
        ("ms concealed", BLACK, |s| s.concealed_ms),
    ];
    for (name, color, f) in series {
        c2.draw_series(LineSeries::new(
            samples.iter().map(|s| (s.t, f(s))),
            color.stroke_width(2),
        ))
        .map_err(err)?
        .label(name)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    c2.configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)
}

/// Draws residual loss (%) against network loss (%), one line per setting.
pub fn plot_sweep(
    path: &Path,
    title: &str,
    lines: &[(String, Vec<(f64, f64)>)],
) -> std::io::Result<()> {
    let root = SVGBackend::new(path, (900, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let x_max = lines
        .iter()
        .flat_map(|l| l.1.iter().map(|p| p.0))
        .fold(1.0, f64::max);
    let y_max = lines
        .iter()
        .flat_map(|l| l.1.iter().map(|p| p.1))
        .fold(1.0, f64::max)
        * 1.1;
    let mut c = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)
        .map_err(err)?;
    c.configure_mesh()
        .x_desc("network loss (%)")
        .y_desc("residual loss after FEC (%)")
        .draw()
        .map_err(err)?;
    for (i, (name, pts)) in lines.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        c.draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
            .map_err(err)?
            .label(name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        c.draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))
            .map_err(err)?;
    }
    c.configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)
}
