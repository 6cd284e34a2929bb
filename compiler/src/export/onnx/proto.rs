//! A small builder over tract-onnx's prost-generated ONNX schema (`tract_onnx::pb`, IR version 8).
//!
//! Every node is named after its first output tensor, so a tensor name is also the name of the
//! node that computes it (Netron shows it, and tract's `node_by_name` finds it).

use tract_onnx::pb;
use tract_onnx::pb::attribute_proto::AttributeType;
use tract_onnx::pb::tensor_proto::DataType;
use tract_onnx::pb::tensor_shape_proto::{Dimension, dimension::Value as DimValue};

/// A graph under construction: nodes in topological order, initializers, and the shapes of the
/// named intermediate tensors.
#[derive(Debug, Default)]
pub(crate) struct GraphBuilder {
    nodes: Vec<pb::NodeProto>,
    initializers: Vec<pb::TensorProto>,
    value_info: Vec<pb::ValueInfoProto>,
}

impl GraphBuilder {
    /// Adds an f32 initializer and returns its name.
    pub(crate) fn f32s(&mut self, name: impl Into<String>, dims: &[usize], values: &[f32]) -> String {
        self.tensor(name.into(), DataType::Float, dims, values.iter().flat_map(|v| v.to_le_bytes()).collect())
    }

    /// Adds an f32 scalar initializer.
    pub(crate) fn f32_scalar(&mut self, name: impl Into<String>, value: f32) -> String {
        self.f32s(name, &[], &[value])
    }

    /// Adds an int8 initializer.
    pub(crate) fn i8s(&mut self, name: impl Into<String>, dims: &[usize], values: &[i8]) -> String {
        self.tensor(name.into(), DataType::Int8, dims, values.iter().map(|&v| v as u8).collect())
    }

    /// Adds an int8 scalar initializer.
    pub(crate) fn i8_scalar(&mut self, name: impl Into<String>, value: i8) -> String {
        self.i8s(name, &[], &[value])
    }

    /// Adds an int32 initializer.
    pub(crate) fn i32s(&mut self, name: impl Into<String>, dims: &[usize], values: &[i32]) -> String {
        self.tensor(name.into(), DataType::Int32, dims, values.iter().flat_map(|v| v.to_le_bytes()).collect())
    }

    /// Adds an int64 initializer.
    pub(crate) fn i64s(&mut self, name: impl Into<String>, dims: &[usize], values: &[i64]) -> String {
        self.tensor(name.into(), DataType::Int64, dims, values.iter().flat_map(|v| v.to_le_bytes()).collect())
    }

    fn tensor(&mut self, name: String, data_type: DataType, dims: &[usize], raw_data: Vec<u8>) -> String {
        self.initializers.push(pb::TensorProto {
            name: name.clone(),
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: data_type as i32,
            raw_data,
            ..Default::default()
        });
        name
    }

    /// Adds a node computing `output` (also the node's name) from `inputs`; returns `output`.
    pub(crate) fn node(
        &mut self,
        op_type: &str,
        inputs: &[&str],
        output: impl Into<String>,
        attribute: Vec<pb::AttributeProto>,
    ) -> String {
        let output = output.into();
        self.nodes.push(pb::NodeProto {
            op_type: op_type.into(),
            name: output.clone(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.clone()],
            attribute,
            ..Default::default()
        });
        output
    }

    /// Renames the last node, which must compute `current`, and its output to `name`: the last
    /// node of an op produces the op's documented output tensor. Nothing reads `current` yet.
    pub(crate) fn rename_last(&mut self, current: &str, name: &str) -> String {
        match self.nodes.last_mut() {
            Some(node) if node.output.first().is_some_and(|o| o == current) => {
                node.name = name.to_string();
                node.output = vec![name.to_string()];
            }
            // Every op emits at least one node; an op whose last tensor is not a fresh node
            // output gets an Identity so that its output still has its documented name.
            _ => {
                self.node("Identity", &[current], name, vec![]);
            }
        }
        name.to_string()
    }

    /// Records the type and shape of an intermediate tensor (for checkers, Netron and tract).
    pub(crate) fn value_info(&mut self, name: &str, elem: DataType, dims: &[usize]) {
        self.value_info.push(value_info(name, elem, dims));
    }

    /// The finished graph.
    pub(crate) fn finish(
        self,
        name: &str,
        input: pb::ValueInfoProto,
        output: pb::ValueInfoProto,
        doc_string: String,
    ) -> pb::GraphProto {
        pb::GraphProto {
            name: name.to_string(),
            node: self.nodes,
            initializer: self.initializers,
            input: vec![input],
            output: vec![output],
            value_info: self.value_info,
            doc_string,
            ..Default::default()
        }
    }
}

/// A tensor's type and static shape.
pub(crate) fn value_info(name: &str, elem: DataType, dims: &[usize]) -> pb::ValueInfoProto {
    let dim =
        dims.iter().map(|&d| Dimension { value: Some(DimValue::DimValue(d as i64)), ..Default::default() }).collect();
    pb::ValueInfoProto {
        name: name.into(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: elem as i32,
                shape: Some(pb::TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// An integer attribute.
pub(crate) fn attr_int(name: &str, value: i64) -> pb::AttributeProto {
    pb::AttributeProto { name: name.into(), r#type: AttributeType::Int as i32, i: value, ..Default::default() }
}

/// An integer-list attribute.
pub(crate) fn attr_ints(name: &str, values: &[usize]) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: AttributeType::Ints as i32,
        ints: values.iter().map(|&v| v as i64).collect(),
        ..Default::default()
    }
}
