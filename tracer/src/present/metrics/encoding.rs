//! Metric families as `prometheus-client` encodes them: labelled counters and gauges, and
//! histograms, written as one collector. Knows no metric by name; uses `latency`'s histogram.

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric},
    metrics::{counter::ConstCounter, gauge::ConstGauge, MetricType},
    registry::Unit,
};

use super::latency::ConstHistogram;

pub(super) type Labels = Vec<(String, String)>;

pub(super) fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[derive(Debug)]
pub(super) enum Kind {
    Counter,
    Gauge,
}

/// One metric family: name (without `_total`), help, unit, kind and its series.
#[derive(Debug)]
pub(super) struct Family {
    pub(super) name: &'static str,
    pub(super) help: &'static str,
    pub(super) unit: Option<Unit>,
    pub(super) kind: Kind,
    pub(super) series: Vec<(Labels, f64)>,
}

/// A histogram family: name, help, unit and one histogram per label set.
#[derive(Debug)]
pub(super) struct HistogramFamily {
    pub(super) name: &'static str,
    pub(super) help: &'static str,
    pub(super) unit: Option<Unit>,
    pub(super) series: Vec<(Labels, ConstHistogram)>,
}

/// The families of one scrape, encoded by `prometheus-client`.
#[derive(Debug)]
pub(super) struct Families(pub(super) Vec<Family>, pub(super) Vec<HistogramFamily>);

impl Collector for Families {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for family in &self.0 {
            match family.kind {
                Kind::Counter => encode_family(&mut encoder, family, ConstCounter::new)?,
                Kind::Gauge => encode_family(&mut encoder, family, ConstGauge::new)?,
            }
        }
        for family in &self.1 {
            let mut out = encoder.encode_descriptor(
                family.name,
                family.help,
                family.unit.as_ref(),
                MetricType::Histogram,
            )?;
            for (labels, histogram) in &family.series {
                histogram.encode(out.encode_family(labels)?)?;
            }
        }
        Ok(())
    }
}

/// One family's descriptor and samples, each value made into a metric by `metric`.
pub(super) fn encode_family<M: EncodeMetric>(
    encoder: &mut DescriptorEncoder,
    family: &Family,
    metric: impl Fn(f64) -> M,
) -> Result<(), std::fmt::Error> {
    let mut out = encoder.encode_descriptor(
        family.name,
        family.help,
        family.unit.as_ref(),
        metric(0.0).metric_type(),
    )?;
    if let [(labels, value)] = family.series.as_slice() {
        if labels.is_empty() {
            // One unlabelled sample: `name 1.0`, not `name{} 1.0`.
            return metric(*value).encode(out);
        }
    }
    for (labels, value) in &family.series {
        metric(*value).encode(out.encode_family(labels)?)?;
    }
    Ok(())
}
