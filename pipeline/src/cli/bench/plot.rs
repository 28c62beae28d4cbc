//! The run's two plots, SVG drawn by plotters: throughput against concurrency and latency
//! percentiles against concurrency, one line per device and batch size.

use std::path::Path;

use anyhow::anyhow;
use plotters::prelude::*;

use super::report::{Record, Results};

/// One line: a device and batch size, its points ordered by concurrency.
fn series(r: &Results) -> Vec<(String, Vec<&Record>)> {
    let mut out: Vec<(String, Vec<&Record>)> = Vec::new();
    for rec in &r.records {
        let name = if r.target.kind == "model" {
            format!("{} batch {}", rec.device, rec.batch)
        } else {
            rec.device.clone()
        };
        match out.iter_mut().find(|(n, _)| *n == name) {
            Some((_, v)) => v.push(rec),
            None => out.push((name, vec![rec])),
        }
    }
    for (_, v) in &mut out {
        v.sort_by_key(|r| r.concurrency);
    }
    out
}

/// One line of a chart: its legend, its colour's index, its (concurrency, value) points.
struct Line {
    name: String,
    colour: usize,
    points: Vec<(f64, f64)>,
}

/// One chart of `lines` against concurrency, on a log scale.
fn chart(path: &Path, title: &str, y_desc: &str, lines: &[Line]) -> anyhow::Result<()> {
    let err = |e: &dyn std::fmt::Display| anyhow!("cannot draw {}: {e}", path.display());
    let xs = lines.iter().flat_map(|l| l.points.iter().map(|q| q.0));
    let x_max = xs.fold(1.0f64, f64::max);
    let y_max = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|q| q.1))
        .fold(0.0f64, f64::max);
    let root = SVGBackend::new(path, (900, 540)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut c = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(72)
        .build_cartesian_2d(
            (0.8f64..x_max * 1.25).log_scale(),
            0.0f64..(y_max * 1.15).max(1e-3),
        )
        .map_err(|e| err(&e))?;
    c.configure_mesh()
        .x_desc("concurrency (requests in flight)")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_desc(y_desc)
        .draw()
        .map_err(|e| err(&e))?;
    for Line {
        name,
        colour,
        points,
    } in lines
    {
        let style = Palette99::pick(*colour).stroke_width(2);
        c.draw_series(LineSeries::new(points.iter().copied(), style))
            .map_err(|e| err(&e))?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
        c.draw_series(
            points
                .iter()
                .map(|&p| Circle::new(p, 3, Palette99::pick(*colour).filled())),
        )
        .map_err(|e| err(&e))?;
    }
    c.configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

/// Writes `throughput.svg` and `latency.svg` into `dir`, returning their paths.
pub fn write(r: &Results, dir: &Path) -> anyhow::Result<Vec<std::path::PathBuf>> {
    let lines = series(r);
    let thr: Vec<_> = lines
        .iter()
        .enumerate()
        .map(|(i, (name, recs))| {
            let pts = recs
                .iter()
                .map(|r| (r.concurrency as f64, r.throughput))
                .collect();
            Line {
                name: name.clone(),
                colour: i,
                points: pts,
            }
        })
        .collect();
    let mut lat = Vec::new();
    for (i, (name, recs)) in lines.iter().enumerate() {
        for (k, (q, pick)) in [("p50", 0usize), ("p95", 1), ("p99", 2)].iter().enumerate() {
            let pts = recs
                .iter()
                .map(|r| {
                    let l = r.latency_ms;
                    (r.concurrency as f64, [l.p50, l.p95, l.p99][*pick])
                })
                .collect();
            lat.push(Line {
                name: format!("{name} {q}"),
                colour: i * 3 + k,
                points: pts,
            });
        }
    }
    let title = format!("{} {}", r.target.kind, r.target.name);
    let (t, l) = (dir.join("throughput.svg"), dir.join("latency.svg"));
    chart(
        &t,
        &format!("{title}: throughput"),
        "inputs per second",
        &thr,
    )?;
    chart(&l, &format!("{title}: latency"), "milliseconds", &lat)?;
    Ok(vec![t, l])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_plots_are_svg_with_a_line_per_series() {
        let r = crate::cli::bench::report::tests::results(
            "m",
            &[(1, 1, 10.0), (1, 8, 40.0), (8, 1, 50.0), (8, 8, 90.0)],
        );
        let dir = tempfile::tempdir().unwrap();
        let paths = write(&r, dir.path()).unwrap();
        for p in paths {
            let svg = std::fs::read_to_string(&p).unwrap();
            assert!(svg.starts_with("<svg"), "{}", p.display());
            assert!(svg.contains("cpu batch 8"), "{}", p.display());
            assert!(svg.contains("cpu batch 1"), "{}", p.display());
        }
    }
}
