//! Checks the pictures `mnistc build` writes beside a blob against the data they show: the
//! build report's numbers, the blob run again by the runtime, and the test images themselves.

use std::path::Path;

use image::GenericImageView;
use mnistc::data::Images;
use mnistc::report::confusion_map::ConfusionMap;
use mnistc::report::metrics::Evaluation;
use mnistc::report::mistakes::{Mistake, MistakeGrid, Mistakes, SCALE};
use mnistc::report::picture::Picture;
use mnistc_runtime::{Input, Model};

fn rgb(image: &image::DynamicImage, x: u32, y: u32) -> [u8; 3] {
    let p = image.get_pixel(x, y).0;
    [p[0], p[1], p[2]]
}

/// Every misclassified test image with the blob's confidence, most confident first: computed
/// here image by image, independently of the build.
fn all_mistakes(blob: &[u8], test: &Images) -> Vec<Mistake> {
    let model = Model::from_bytes(blob).expect("the blob loads");
    let mut arena = vec![0u8; model.arena_size()];
    let mut p = vec![0f32; model.output_len()];
    let mut out = Vec::new();
    for i in 0..test.n {
        let logits = model.run_logits(Input::Pixels(test.image(i)), &mut arena).unwrap();
        let predicted = logits.argmax() as u8;
        logits.softmax(&mut p);
        if predicted != test.labels[i] {
            out.push(Mistake { index: i, label: test.labels[i], predicted, confidence: p[predicted as usize] });
        }
    }
    out.sort_by(|a, b| b.confidence.total_cmp(&a.confidence).then(a.index.cmp(&b.index)));
    out
}

/// Checks `DIR/STEM.{curves.png,curves.svg,confusion.png,mistakes.png,report.html,report.md}`
/// against `STEM.report.json`, `STEM.bin` and the test set the build evaluated.
pub fn check(dir: &Path, stem: &str, test: &Images) {
    let file = |ext: &str| dir.join(format!("{stem}.{ext}"));
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(file("report.json")).unwrap()).expect("report.json is JSON");

    // Training curves: the history behind them is in the report, one record per epoch.
    let epochs = report["history"]["epochs"].as_array().expect("the report holds the history");
    assert_eq!(epochs.len() as u64, report["training"]["epochs"].as_u64().unwrap());
    for (i, e) in epochs.iter().enumerate() {
        assert_eq!(e["epoch"], i + 1);
        for key in ["train_loss", "train_accuracy", "val_loss", "val_accuracy", "learning_rate", "seconds"] {
            assert!(e[key].as_f64().is_some_and(f64::is_finite), "epoch {i}: `{key}` is {}", e[key]);
        }
    }
    let curves = image::open(file("curves.png")).expect("curves.png decodes");
    assert_eq!(curves.dimensions(), (960, 400));
    let svg = std::fs::read_to_string(file("curves.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"), "curves.svg is not an SVG document");
    assert!(
        svg.contains("\ntraining\n</text>") && svg.contains("\nvalidation\n</text>"),
        "curves.svg lacks its legend"
    );

    // The heat map: every cell shaded by the share of its row in the report's confusion matrix.
    let device = &report["device"];
    let confusion: Vec<Vec<u64>> = serde_json::from_value(device["confusion"].clone()).unwrap();
    let names: Vec<String> =
        device["per_class"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap().to_string()).collect();
    let eval = Evaluation::from_confusion(confusion.clone(), &names);
    let map = ConfusionMap { title: "", eval: &eval };
    let heat = image::open(file("confusion.png")).expect("confusion.png decodes");
    assert_eq!(heat.dimensions(), map.size());
    for (row, counts) in confusion.iter().enumerate() {
        for (col, count) in counts.iter().enumerate() {
            let (x, y) = ConfusionMap::cell_origin(row, col);
            let c = ConfusionMap::colour(map.fraction(row, col));
            assert_eq!(rgb(&heat, x + 4, y + 4), [c.0, c.1, c.2], "cell ({row}, {col}), count {count}");
        }
    }

    // The mistakes: exactly the most confident ones, as the blob computes them again here.
    let listed: Vec<Mistake> = serde_json::from_value(report["mistakes"].clone()).unwrap();
    let wrong = device["samples"].as_u64().unwrap() - device["correct"].as_u64().unwrap();
    let blob = std::fs::read(file("bin")).unwrap();
    let expected = all_mistakes(&blob, test);
    assert_eq!(expected.len() as u64, wrong, "the report's accuracy and the blob disagree");
    assert_eq!(listed, expected[..expected.len().min(20)]);
    let mistakes =
        Mistakes { list: listed.clone(), images: test.subset(&listed.iter().map(|m| m.index).collect::<Vec<_>>()) };
    let grid = MistakeGrid { title: "", mistakes: &mistakes, class_names: &names };
    let shown = image::open(file("mistakes.png")).expect("mistakes.png decodes");
    assert_eq!(shown.dimensions(), grid.size());
    let c = test.channels;
    for (k, m) in listed.iter().enumerate() {
        let (x0, y0) = grid.image_origin(k);
        let pixels = test.image(m.index);
        for y in 0..test.height {
            for x in 0..test.width {
                let p = &pixels[(y * test.width + x) * c..][..c];
                let want = if c == 3 { [p[0], p[1], p[2]] } else { [p[0]; 3] };
                let at = (x0 + x as u32 * SCALE + 1, y0 + y as u32 * SCALE + 1);
                assert_eq!(rgb(&shown, at.0, at.1), want, "mistake {k} (test image {}), pixel ({x}, {y})", m.index);
            }
        }
    }

    // The reports: markdown links the pictures beside it, HTML inlines them.
    let md = std::fs::read_to_string(file("report.md")).unwrap();
    for ext in ["curves.png", "confusion.png", "mistakes.png"] {
        assert!(md.contains(&format!("]({stem}.{ext})")), "report.md does not show {stem}.{ext}");
    }
    let html = std::fs::read_to_string(file("report.html")).unwrap();
    assert_eq!(html.matches("src=\"data:image/png;base64,").count(), 2);
    assert_eq!(html.matches("src=").count(), 2, "report.html refers to another file");
    assert!(html.contains("<svg") && html.trim_end().ends_with("</html>"));
}
