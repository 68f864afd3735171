/// The `cnnref-case-1` format: one JSON object per case. `Vectors/SCHEMA.md`
/// documents every field; this file is the one place that reads and writes it.
public enum CaseFormat {
    public static let schema = "cnnref-case-1"
    /// The default allocation limit for one case (inputs, output and gradients).
    public static let defaultMaxBytes = 1 << 30
    /// The default work limit for one case: loop steps of one pass (see `Work`).
    public static let defaultMaxWork = 1 << 24

    /// The tensors a layer's `expected` block holds: its output, then the gradient of its
    /// data input and of every parameter, each with its shape.
    public static func expectedLayout(_ layer: any Layer, input: [Int], output: [Int]) -> (outputs: [(String, [Int])], gradients: [(String, [Int])]) {
        ([(layer.outputName, output)] + layer.auxiliaryOutputShapes(forInput: input),
         [(layer.inputName, input)] + layer.parameters.map { ($0.name, $0.tensor.shape) })
    }

    /// `tensors` in `layout` order, each checked by name and shape: an unknown or repeated
    /// name, a wrong shape, or (with `complete`) a missing name is an error naming
    /// `path.name`.
    public static func conform(_ tensors: [NamedTensor], to layout: [(String, [Int])], path: String, complete: Bool) throws(CaseError) -> [NamedTensor] {
        let names = layout.map(\.0)
        var seen = Set<String>()
        for t in tensors {
            guard let shape = layout.first(where: { $0.0 == t.name })?.1 else {
                throw CaseError("\(path).\(t.name)", "unknown tensor; expected \(names.isEmpty ? "none" : names.joined(separator: ", "))")
            }
            guard seen.insert(t.name).inserted else { throw CaseError("\(path).\(t.name)", "appears more than once") }
            guard t.tensor.shape == shape else {
                throw CaseError("\(path).\(t.name).shape", "expected \(shape), found \(t.tensor.shape)")
            }
        }
        if complete, let missing = names.first(where: { !seen.contains($0) }) {
            throw CaseError("\(path).\(missing)", "missing; expected \(names.joined(separator: ", "))")
        }
        return names.compactMap { n in tensors.first { $0.name == n } }
    }

    /// A results file's section checked against the golden section: every tensor named there,
    /// at most once, with its shape (any may be left out), in the golden order.
    public static func conform(_ tensors: [NamedTensor], like golden: [NamedTensor], path: String) throws(CaseError) -> [NamedTensor] {
        try conform(tensors, to: golden.map { ($0.name, $0.tensor.shape) }, path: path, complete: false)
    }
}

/// What a case expects: the outputs and the gradient of every input and parameter.
public struct Expected: Equatable, Sendable {
    public var outputs: [NamedTensor]
    public var gradients: [NamedTensor]
    /// The JVP of the output along the case's `tangents` (`cnnref-case-2`; empty otherwise).
    public var jvp: [NamedTensor] = []
    /// The double backward with the tangents as the cotangent w: ∂⟨w, Jᵀu⟩/∂(x, θ), in
    /// `gradients` order (`cnnref-case-2` of a layer in `ForwardMode.doubleBackwardLayers`).
    public var doubleBackward: [NamedTensor] = []
    public init(outputs: [NamedTensor], gradients: [NamedTensor]) {
        self.outputs = outputs
        self.gradients = gradients
    }
}

/// One case: a layer, its configuration and inputs, and optionally what it must produce.
public struct Case: Sendable {
    public var id: String
    public var layer: String
    public var description: String
    public var tags: [String]
    public var notes: [String]
    public var config: [(String, JSON)]
    public var inputs: [NamedTensor]
    public var labels: [Int]?
    public var upstream: Tensor?
    public var expected: Expected?
    /// Forward mode (`cnnref-case-2`, `ForwardMode`): a tangent for the data input and every
    /// parameter, in `expected.gradients` order; nil in a `cnnref-case-1` case.
    public var tangents: [NamedTensor]? = nil

    public init(id: String, layer: String, description: String = "", tags: [String] = [], notes: [String] = [],
                config: [(String, JSON)] = [], inputs: [NamedTensor], labels: [Int]? = nil,
                upstream: Tensor? = nil, expected: Expected? = nil) {
        self.id = id; self.layer = layer; self.description = description; self.tags = tags
        self.notes = notes; self.config = config; self.inputs = inputs; self.labels = labels
        self.upstream = upstream; self.expected = expected
    }

    public func input(_ name: String) -> Tensor? { inputs.first { $0.name == name }?.tensor }

    /// Checks a case built in Swift (not decoded) as the decoder does: the layer builds,
    /// the upstream has the output's shape, and `expected` holds exactly the layer's
    /// tensors with its shapes. Returns the case with `expected` in the layer's order.
    public func checked() throws(CaseError) -> Case {
        let layer = try LayerRegistry.makeLayer(self)
        guard let x = input(layer.inputName) else { throw CaseError("inputs.\(layer.inputName)", "missing required input") }
        let outShape = try layer.outputShape(forInput: x.shape)
        if let upstream, upstream.shape != outShape {
            throw CaseError("upstream.shape", "expected the output shape \(outShape), found \(upstream.shape)")
        }
        var out = self
        if let tangents { out.tangents = try ForwardMode.conform(tangents, of: self, layer, input: x.shape, output: outShape) }
        if let expected {
            let layout = CaseFormat.expectedLayout(layer, input: x.shape, output: outShape)
            out.expected = Expected(
                outputs: try CaseFormat.conform(expected.outputs, to: layout.outputs, path: "expected.outputs", complete: true),
                gradients: try CaseFormat.conform(expected.gradients, to: layout.gradients, path: "expected.gradients", complete: true))
            out.expected!.jvp = try CaseFormat.conform(expected.jvp, to: tangents == nil ? [] : [(layer.outputName, outShape)],
                                                       path: "expected.jvp", complete: tangents != nil)
            let second = tangents != nil && ForwardMode.doubleBackwardLayers.contains(self.layer)
            out.expected!.doubleBackward = try CaseFormat.conform(expected.doubleBackward, to: second ? layout.gradients : [],
                                                                  path: "expected.double_backward", complete: second)
        }
        return out
    }
}

// MARK: - Decoding

/// Reads cases from JSON, rejecting anything malformed with a `CaseError`
/// that names the field.
public struct CaseDecoder: Sendable {
    public var maxBytes: Int
    /// A bound on the loop steps one pass of the layer may run (`Work`: the terms the
    /// kernels visit — taps inside the input, never those in the padding — plus outputs
    /// and inputs), so a small hostile case cannot hang the tool.
    public var maxWork: Int
    public init(maxBytes: Int = CaseFormat.defaultMaxBytes, maxWork: Int = CaseFormat.defaultMaxWork) {
        self.maxBytes = maxBytes
        self.maxWork = maxWork
    }

    public func decode(text: String) throws -> Case {
        let json: JSON
        do { json = try JSON.parse(text) } catch {
            throw CaseError("", "malformed JSON: \(error)")
        }
        return try decode(json)
    }

    public func decode(_ json: JSON) throws(CaseError) -> Case {
        var top = try ObjectReader(json, path: "")
        let schema = try top.string("schema")
        guard schema == CaseFormat.schema || schema == ForwardMode.schema else {
            throw CaseError("schema", "expected \"\(CaseFormat.schema)\" (or \"\(ForwardMode.schema)\", with tangents), found \"\(schema)\"")
        }
        let forwardMode = schema == ForwardMode.schema
        let id = try top.string("id")
        let layer = try top.string("layer")
        guard let spec = LayerRegistry.spec(layer) else {
            throw CaseError("layer", "unknown layer \"\(layer)\"; expected one of \(LayerRegistry.ids.joined(separator: ", "))")
        }
        let description = try top.optionalString("description") ?? ""
        let tags = try top.optionalStrings("tags") ?? []
        let notes = try top.optionalStrings("notes") ?? []
        let configJSON = try top.optional("config") ?? .object([])
        guard case .object(let config) = configJSON else {
            throw CaseError("config", "expected an object, found \(configJSON.typeName)")
        }
        var budget = ByteBudget(limit: maxBytes)
        guard let inputsJSON = try top.optional("inputs") else { throw CaseError("inputs", "missing required field") }
        var inputReader = try ObjectReader(inputsJSON, path: "inputs")
        var inputs: [NamedTensor] = []
        var inputNames = spec.inputs
        if let prefix = spec.variadicPrefix {
            // x0, x1, … in order, as many as the case gives; a gap ends the list and the
            // unknown-field check below names the stray one.
            inputNames = Array((0...).lazy.map { "\(prefix)\($0)" }.prefix { name in inputReader.members.contains { $0.0 == name } })
            guard inputNames.count >= 2 else {
                throw CaseError("inputs.\(prefix)\(inputNames.count)", "missing: \(layer) needs at least two data inputs \(prefix)0, \(prefix)1, … (found \(inputNames.count))")
            }
            inputNames += spec.inputs
        }
        for name in inputNames {
            if let t = try inputReader.optional(name) {
                inputs.append(NamedTensor(name, try decodeTensor(t, path: "inputs.\(name)", budget: &budget)))
            } else if !spec.optionalInputs.contains(name) {
                throw CaseError("inputs.\(name)", "missing required input of \(layer) (inputs: \(spec.inputs.joined(separator: ", ")))")
            }
        }
        try inputReader.rejectUnknown(expected: inputNames)
        var labels: [Int]? = nil
        if let l = try top.optional("labels") {
            guard spec.isLoss else { throw CaseError("labels", "\(layer) takes no labels (only losses do)") }
            labels = try decodeInts(l, path: "labels")
        } else if spec.isLoss {
            throw CaseError("labels", "missing required field: \(layer) needs one integer class label per row of scores")
        }
        var upstream: Tensor? = nil
        if let u = try top.optional("upstream") {
            guard !spec.isLoss else { throw CaseError("upstream", "\(layer) is a loss: its output is the objective, so a case has no upstream") }
            upstream = try decodeTensor(u, path: "upstream", budget: &budget)
        }
        var tangents: [NamedTensor]? = nil
        if forwardMode {
            guard let t = try top.optional("tangents") else {
                throw CaseError("tangents", "missing required field: a \(ForwardMode.schema) case gives a tangent for the data input and every parameter")
            }
            tangents = try decodeTensors(t, path: "tangents", budget: &budget)
        }
        var expected: Expected? = nil
        if let e = try top.optional("expected") {
            var reader = try ObjectReader(e, path: "expected")
            let outputs = try decodeTensors(try reader.required("outputs"), path: "expected.outputs", budget: &budget)
            let gradients = try decodeTensors(try reader.required("gradients"), path: "expected.gradients", budget: &budget)
            expected = Expected(outputs: outputs, gradients: gradients)
            let second = forwardMode && ForwardMode.doubleBackwardLayers.contains(layer)
            if forwardMode { expected!.jvp = try decodeTensors(try reader.required("jvp"), path: "expected.jvp", budget: &budget) }
            if second {
                expected!.doubleBackward = try decodeTensors(try reader.required("double_backward"), path: "expected.double_backward", budget: &budget)
            }
            try reader.rejectUnknown(expected: ["outputs", "gradients"] + (forwardMode ? ["jvp"] : []) + (second ? ["double_backward"] : []))
        }
        try top.rejectUnknown(expected: ["schema", "id", "layer", "description", "tags", "notes", "config",
                                         "inputs", "labels", "upstream"] + (forwardMode ? ["tangents"] : []) + ["expected"])
        var result = Case(id: id, layer: layer, description: description, tags: tags, notes: notes,
                          config: config, inputs: inputs, labels: labels, upstream: upstream, expected: expected)
        result.tangents = tangents
        // Build the layer now so every config and shape error surfaces at decode time.
        let built = try LayerRegistry.makeLayer(result)
        let xShape = inputs[0].tensor.shape
        let outShape = try built.outputShape(forInput: xShape)
        try budget.charge(outShape, path: "output of \(layer) (shape \(outShape))")
        let work = Work.of(built, input: xShape, output: outShape)
        if work.total.map({ $0 > maxWork }) ?? true {
            throw CaseError("inputs", "\(work.arithmetic) exceeds the work limit of \(maxWork) (--max-work)")
        }
        for input in inputs { try budget.charge(input.tensor.shape, path: "gradient of inputs.\(input.name)") }
        if let upstream, upstream.shape != outShape {
            throw CaseError("upstream.shape", "expected the output shape \(outShape), found \(upstream.shape)")
        }
        if let t = tangents {
            try ForwardMode.requireJVP(layer)
            result.tangents = try ForwardMode.conform(t, of: result, built, input: xShape, output: outShape)
        }
        if let expected {
            // Exactly the layer's tensors, each with the layer's shape, in the layer's order.
            let layout = CaseFormat.expectedLayout(built, input: xShape, output: outShape)
            result.expected = Expected(
                outputs: try CaseFormat.conform(expected.outputs, to: layout.outputs, path: "expected.outputs", complete: true),
                gradients: try CaseFormat.conform(expected.gradients, to: layout.gradients, path: "expected.gradients", complete: true))
            if forwardMode {
                result.expected!.jvp = try CaseFormat.conform(expected.jvp, to: [(built.outputName, outShape)], path: "expected.jvp", complete: true)
            }
            if forwardMode && ForwardMode.doubleBackwardLayers.contains(layer) {
                result.expected!.doubleBackward = try CaseFormat.conform(expected.doubleBackward, to: layout.gradients,
                                                                         path: "expected.double_backward", complete: true)
            }
        }
        return result
    }

    func decodeTensors(_ json: JSON, path: String, budget: inout ByteBudget) throws(CaseError) -> [NamedTensor] {
        guard case .object(let members) = json else { throw CaseError(path, "expected an object of tensors, found \(json.typeName)") }
        var out: [NamedTensor] = []
        for (name, value) in members { out.append(NamedTensor(name, try decodeTensor(value, path: "\(path).\(name)", budget: &budget))) }
        return out
    }

    /// `{"shape": [...], "data": [...]}` with count(data) = Π shape.
    public func decodeTensor(_ json: JSON, path: String, budget: inout ByteBudget) throws(CaseError) -> Tensor {
        var reader = try ObjectReader(json, path: path)
        guard let shapeJSON = try reader.optional("shape") else { throw CaseError("\(path).shape", "missing required field") }
        guard let dataJSON = try reader.optional("data") else { throw CaseError("\(path).data", "missing required field") }
        try reader.rejectUnknown(expected: ["shape", "data"])
        let shape = try decodeInts(shapeJSON, path: "\(path).shape")
        for (k, d) in shape.enumerated() where d < 1 {
            throw CaseError("\(path).shape[\(k)]", "expected a dimension ≥ 1, found \(d)")
        }
        try budget.charge(shape, path: "\(path).shape")
        let count = shape.reduce(1, *)
        guard case .array(let items) = dataJSON else { throw CaseError("\(path).data", "expected an array of numbers, found \(dataJSON.typeName)") }
        guard items.count == count else {
            throw CaseError("\(path).data", "shape \(shape) needs \(count) elements (\(shape.isEmpty ? "a scalar" : shape.map(String.init).joined(separator: "·"))), found \(items.count)")
        }
        var data = [Double]()
        data.reserveCapacity(count)
        for (k, item) in items.enumerated() { data.append(try decodeDouble(item, path: "\(path).data[\(k)]")) }
        return Tensor(shape: shape, scalars: data)
    }
}

/// Counts the bytes a case will allocate, and refuses before allocating past the limit.
public struct ByteBudget: Sendable {
    public let limit: Int
    public private(set) var used = 0
    public init(limit: Int) { self.limit = limit }

    mutating func charge(_ shape: [Int], path: String) throws(CaseError) {
        var count = 1
        for d in shape {
            let (p, overflow) = count.multipliedReportingOverflow(by: d)
            guard !overflow else { throw CaseError(path, "shape \(shape) has more elements than Int can count") }
            count = p
        }
        let (bytes, o1) = count.multipliedReportingOverflow(by: 8)
        let (total, o2) = used.addingReportingOverflow(bytes)
        guard !o1, !o2, total <= limit else {
            throw CaseError(path, "shape \(shape) needs \(shape.map(String.init).joined(separator: "·")) = \(count) elements × 8 bytes = \(o1 ? "more than Int.max" : String(bytes)) bytes; with the \(used) bytes already needed that exceeds the limit of \(limit) bytes (--max-bytes)")
        }
        used = total
    }
}

/// A JSON object read field by field, so that unknown fields can be rejected.
struct ObjectReader {
    let members: [(String, JSON)]
    let path: String
    var used: Set<String> = []

    init(_ json: JSON, path: String) throws(CaseError) {
        guard case .object(let m) = json else {
            throw CaseError(path, "expected an object, found \(json.typeName)")
        }
        members = m
        self.path = path
    }

    func fieldPath(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    mutating func optional(_ key: String) throws(CaseError) -> JSON? {
        used.insert(key)
        return members.first { $0.0 == key }?.1
    }

    mutating func required(_ key: String) throws(CaseError) -> JSON {
        guard let v = try optional(key) else { throw CaseError(fieldPath(key), "missing required field") }
        return v
    }

    mutating func string(_ key: String) throws(CaseError) -> String {
        let v = try required(key)
        guard case .string(let s) = v else { throw CaseError(fieldPath(key), "expected a string, found \(v.typeName)") }
        return s
    }

    mutating func optionalString(_ key: String) throws(CaseError) -> String? {
        guard let v = try optional(key) else { return nil }
        guard case .string(let s) = v else { throw CaseError(fieldPath(key), "expected a string, found \(v.typeName)") }
        return s
    }

    mutating func optionalStrings(_ key: String) throws(CaseError) -> [String]? {
        guard let v = try optional(key) else { return nil }
        guard case .array(let items) = v else { throw CaseError(fieldPath(key), "expected an array of strings, found \(v.typeName)") }
        var out: [String] = []
        for (k, item) in items.enumerated() {
            guard case .string(let s) = item else { throw CaseError("\(fieldPath(key))[\(k)]", "expected a string, found \(item.typeName)") }
            out.append(s)
        }
        return out
    }

    func rejectUnknown(expected: [String]) throws(CaseError) {
        for (key, _) in members where !expected.contains(key) {
            throw CaseError(fieldPath(key), "unknown field; expected one of \(expected.joined(separator: ", "))")
        }
    }
}

/// A number, or one of the strings "NaN", "Infinity", "-Infinity".
public func decodeDouble(_ json: JSON, path: String) throws(CaseError) -> Double {
    switch json {
    case .number(let literal):
        guard let v = Double(literal) else { throw CaseError(path, "expected a number, found \(literal)") }
        guard v.isFinite else { throw CaseError(path, "\(literal) overflows Double (largest finite is 1.7976931348623157e308)") }
        let mantissa = literal.lowercased().split(separator: "e")[0]
        if v == 0, mantissa.contains(where: { ("1"..."9").contains($0) }) {
            throw CaseError(path, "\(literal) underflows Double to zero (smallest subnormal is 5e-324)")
        }
        return v
    case .string("NaN"): return .nan
    case .string("Infinity"): return .infinity
    case .string("-Infinity"): return -.infinity
    case .string(let s): throw CaseError(path, "expected a number or \"NaN\", \"Infinity\", \"-Infinity\", found the string \"\(s)\"")
    default: throw CaseError(path, "expected a number, found \(json.typeName)")
    }
}

/// An integer written without fraction or exponent, within `Int`'s range.
public func decodeInt(_ json: JSON, path: String) throws(CaseError) -> Int {
    guard case .number(let literal) = json else { throw CaseError(path, "expected an integer, found \(json.typeName)") }
    guard literal.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == "-") }) else {
        throw CaseError(path, "expected an integer, found \(literal)")
    }
    guard let v = Int(literal) else { throw CaseError(path, "\(literal) is outside the range of Int (\(Int.min)...\(Int.max))") }
    return v
}

public func decodeInts(_ json: JSON, path: String) throws(CaseError) -> [Int] {
    guard case .array(let items) = json else { throw CaseError(path, "expected an array of integers, found \(json.typeName)") }
    var out: [Int] = []
    for (k, item) in items.enumerated() { out.append(try decodeInt(item, path: "\(path)[\(k)]")) }
    return out
}

// MARK: - Configuration

/// Reads a layer's `config`, with the defaults the case format allows and
/// errors that name the field.
public struct ConfigReader {
    /// The largest integer config value (strides, paddings, kernels, groups, pieces):
    /// window arithmetic on it cannot overflow `Int`.
    static let largest = 1 << 31
    var reader: ObjectReader
    init(_ members: [(String, JSON)]) {
        reader = try! ObjectReader(.object(members), path: "config")
    }

    mutating func value(_ key: String) throws(CaseError) -> JSON? { try reader.optional(key) }
    func path(_ key: String) -> String { "config.\(key)" }

    /// `count` integers, each ≥ `minimum`; `defaultValue` when the field is absent (nil = required).
    mutating func ints(_ key: String, count: Int, minimum: Int, default defaultValue: [Int]?, meaning: String) throws(CaseError) -> [Int] {
        guard let v = try value(key) else {
            guard let defaultValue else { throw CaseError(path(key), "missing required field (\(meaning))") }
            return defaultValue
        }
        let values = try decodeInts(v, path: path(key))
        guard values.count == count else {
            throw CaseError(path(key), "expected \(count) integers \(meaning), found \(values.count)")
        }
        for (k, x) in values.enumerated() where x < minimum || x > ConfigReader.largest {
            throw CaseError("\(path(key))[\(k)]", "expected an integer in \(minimum)...\(ConfigReader.largest), found \(x)")
        }
        return values
    }

    mutating func int(_ key: String, minimum: Int? = nil, default defaultValue: Int?) throws(CaseError) -> Int {
        guard let v = try value(key) else {
            guard let defaultValue else { throw CaseError(path(key), "missing required field") }
            return defaultValue
        }
        let x = try decodeInt(v, path: path(key))
        if let minimum, x < minimum || x > ConfigReader.largest {
            throw CaseError(path(key), "expected an integer in \(minimum)...\(ConfigReader.largest), found \(x)")
        }
        return x
    }

    mutating func bool(_ key: String, default defaultValue: Bool?) throws(CaseError) -> Bool {
        guard let v = try value(key) else {
            guard let defaultValue else { throw CaseError(path(key), "missing required field (true or false)") }
            return defaultValue
        }
        guard case .bool(let b) = v else { throw CaseError(path(key), "expected true or false, found \(v.typeName)") }
        return b
    }

    /// A finite number (config values are never NaN or infinite).
    mutating func double(_ key: String, meaning: String) throws(CaseError) -> Double {
        guard let v = try value(key) else { throw CaseError(path(key), "missing required field (\(meaning))") }
        let x = try decodeDouble(v, path: path(key))
        guard x.isFinite else { throw CaseError(path(key), "expected a finite number, found \(x)") }
        return x
    }

    mutating func reduction() throws(CaseError) -> Reduction {
        guard let v = try value("reduction") else {
            throw CaseError(path("reduction"), "missing required field (\"mean\" or \"sum\"; engines disagree on the default)")
        }
        guard case .string(let s) = v, let r = Reduction(rawValue: s) else {
            throw CaseError(path("reduction"), "expected \"mean\" or \"sum\", found \(v)")
        }
        return r
    }

    func finish(known: [String]) throws(CaseError) { try reader.rejectUnknown(expected: known) }
}

/// What the decoder needs to know about each layer id.
public struct LayerSpec: Sendable {
    public let id: String
    /// The data input first, then the parameters, in case-format order.
    public let inputs: [String]
    public let optionalInputs: [String]
    public let isLoss: Bool
    public let configFields: [String]
    let build: @Sendable (inout ConfigReader, [String: Tensor], [Int]) throws(CaseError) -> any Layer
    /// For add and concat: the data inputs are `prefix0, prefix1, …` (at least two),
    /// before the named `inputs`.
    public var variadicPrefix: String? = nil
}

/// Every layer id of the case format and how to build it.
public enum LayerRegistry {
    static func window(_ c: inout ConfigReader) throws(CaseError) -> PoolWindow {
        let kernel = try c.ints("kernel", count: 2, minimum: 1, default: nil, meaning: "[kh, kw]; required: engines disagree on the default")
        let stride = try c.ints("stride", count: 2, minimum: 1, default: [1, 1], meaning: "[sh, sw]")
        let padding = try c.ints("padding", count: 4, minimum: 0, default: [0, 0, 0, 0], meaning: "[top, left, bottom, right]")
        let dilation = try c.ints("dilation", count: 2, minimum: 1, default: [1, 1], meaning: "[dh, dw]")
        let ceil = try c.bool("ceil_mode", default: false)
        return PoolWindow(kernel: kernel, stride: stride, padding: padding, dilation: dilation, ceilMode: ceil)
    }

    static let poolFields = ["kernel", "stride", "padding", "dilation", "ceil_mode"]

    public static let specs: [LayerSpec] = [
        LayerSpec(id: Conv2D.id, inputs: ["x", "weight", "bias"], optionalInputs: ["bias"], isLoss: false,
                  configFields: ["stride", "padding", "dilation", "groups"]) { c, t, _ throws(CaseError) in
            let stride = try c.ints("stride", count: 2, minimum: 1, default: [1, 1], meaning: "[sh, sw]")
            let padding = try c.ints("padding", count: 4, minimum: 0, default: [0, 0, 0, 0], meaning: "[top, left, bottom, right]")
            let dilation = try c.ints("dilation", count: 2, minimum: 1, default: [1, 1], meaning: "[dh, dw]")
            let groups = try c.int("groups", minimum: 1, default: 1)
            return Conv2D(weight: t["weight"]!, bias: t["bias"], stride: stride, padding: padding, dilation: dilation, groups: groups)
        },
        LayerSpec(id: MaxPool2D.id, inputs: ["x"], optionalInputs: [], isLoss: false, configFields: poolFields) { c, _, _ throws(CaseError) in
            MaxPool2D(window: try window(&c))
        },
        LayerSpec(id: AvgPool2D.id, inputs: ["x"], optionalInputs: [], isLoss: false,
                  configFields: poolFields + ["count_include_pad"]) { c, _, _ throws(CaseError) in
            let w = try window(&c)
            return AvgPool2D(window: w, countIncludePad: try c.bool("count_include_pad", default: nil))
        },
        LayerSpec(id: ReLU.id, inputs: ["x"], optionalInputs: [], isLoss: false, configFields: []) { _, _, _ in ReLU() },
        LayerSpec(id: Sigmoid.id, inputs: ["x"], optionalInputs: [], isLoss: false, configFields: []) { _, _, _ in Sigmoid() },
        LayerSpec(id: Tanh.id, inputs: ["x"], optionalInputs: [], isLoss: false, configFields: []) { _, _, _ in Tanh() },
        LayerSpec(id: LeakyReLU.id, inputs: ["x"], optionalInputs: [], isLoss: false, configFields: ["slope"]) { c, _, _ throws(CaseError) in
            LeakyReLU(slope: try c.double("slope", meaning: "negative slope; the lecture uses 0.1, PyTorch defaults to 0.01"))
        },
        LayerSpec(id: PReLU.id, inputs: ["x", "slope"], optionalInputs: [], isLoss: false, configFields: []) { _, t, _ in
            PReLU(slope: t["slope"]!)
        },
        LayerSpec(id: ELU.id, inputs: ["x"], optionalInputs: [], isLoss: false, configFields: ["alpha"]) { c, _, _ throws(CaseError) in
            ELU(alpha: try c.double("alpha", meaning: "scale of the negative branch"))
        },
        LayerSpec(id: Swish.id, inputs: ["x", "beta"], optionalInputs: [], isLoss: false, configFields: []) { _, t, _ in
            Swish(beta: t["beta"]!)
        },
        LayerSpec(id: Maxout.id, inputs: ["x", "weight", "bias"], optionalInputs: [], isLoss: false, configFields: ["pieces"]) { c, t, _ throws(CaseError) in
            Maxout(pieces: try c.int("pieces", minimum: 1, default: nil), weight: t["weight"]!, bias: t["bias"]!)
        },
        LayerSpec(id: Linear.id, inputs: ["x", "weight", "bias"], optionalInputs: [], isLoss: false, configFields: []) { _, t, _ in
            Linear(weight: t["weight"]!, bias: t["bias"]!)
        },
        LayerSpec(id: Softmax.id, inputs: ["x"], optionalInputs: [], isLoss: false, configFields: ["axis"]) { c, _, _ throws(CaseError) in
            Softmax(axis: try c.int("axis", default: nil))
        },
        LayerSpec(id: LogSoftmax.id, inputs: ["x"], optionalInputs: [], isLoss: false, configFields: ["axis"]) { c, _, _ throws(CaseError) in
            LogSoftmax(axis: try c.int("axis", default: nil))
        },
        LayerSpec(id: SoftmaxCrossEntropy.id, inputs: ["scores"], optionalInputs: [], isLoss: true, configFields: ["reduction"]) { c, _, labels throws(CaseError) in
            SoftmaxCrossEntropy(labels: labels, reduction: try c.reduction())
        },
        LayerSpec(id: MulticlassHinge.id, inputs: ["scores"], optionalInputs: [], isLoss: true, configFields: ["margin", "reduction"]) { c, _, labels throws(CaseError) in
            let margin = try c.double("margin", meaning: "the hinge margin Δ; the lecture uses 1")
            return MulticlassHinge(labels: labels, margin: margin, reduction: try c.reduction())
        },
        LayerSpec(id: Add.id, inputs: [], optionalInputs: [], isLoss: false, configFields: [], build: { _, t, _ in
            Add(others: others(t))
        }, variadicPrefix: "x"),
        LayerSpec(id: Concat.id, inputs: [], optionalInputs: [], isLoss: false, configFields: ["axis"], build: { c, t, _ throws(CaseError) in
            Concat(axis: try c.int("axis", default: nil), others: others(t))
        }, variadicPrefix: "x"),
        LayerSpec(id: Flatten.id, inputs: ["x"], optionalInputs: [], isLoss: false, configFields: ["start_axis"]) { c, _, _ throws(CaseError) in
            Flatten(startAxis: try c.int("start_axis", default: 1))
        },
        LayerSpec(id: Dropout.id, inputs: ["x", "mask"], optionalInputs: [], isLoss: false, configFields: ["p"]) { c, t, _ throws(CaseError) in
            let p = try c.double("p", meaning: "the drop probability; the kept elements are scaled by 1/(1 − p)")
            guard p >= 0 && p < 1 else {
                throw CaseError("config.p", "expected 0 ≤ p < 1 (the kept elements are scaled by 1/(1 − p) = 1/\(1 - p)), found \(p)")
            }
            let mask = t["mask"]!
            if let k = mask.scalars.firstIndex(where: { $0 != 0 && $0 != 1 }) {
                throw CaseError("inputs.mask.data[\(k)]", "expected 0 (dropped) or 1 (kept), found \(mask[k])")
            }
            return Dropout(p: p, mask: mask)
        },
        LayerSpec(id: AdaptiveAvgPool2D.id, inputs: ["x"], optionalInputs: [], isLoss: false, configFields: ["output_size"]) { c, _, _ throws(CaseError) in
            AdaptiveAvgPool2D(outputSize: try c.ints("output_size", count: 2, minimum: 1, default: nil, meaning: "[oh, ow]; [1, 1] is global average pooling"))
        },
        LayerSpec(id: BatchNorm2D.id, inputs: ["x", "weight", "bias", "running_mean", "running_var"], optionalInputs: [], isLoss: false,
                  configFields: ["training", "eps", "momentum"]) { c, t, _ throws(CaseError) in
            let training = try c.bool("training", default: nil)
            let eps = try c.double("eps", meaning: "added to the variance inside the square root; PyTorch's default is 1e-5, Keras's 1e-3")
            guard eps > 0 else { throw CaseError("config.eps", "expected eps > 0 (the denominator √(σ² + eps) must be positive for a channel of equal values, σ² = 0), found \(eps)") }
            let momentum = try c.double("momentum", meaning: "PyTorch's: new = (1 − momentum)·old + momentum·batch; Keras's momentum is 1 − this")
            guard momentum >= 0 && momentum <= 1 else {
                throw CaseError("config.momentum", "expected 0 ≤ momentum ≤ 1 (new = (1 − momentum)·old + momentum·batch), found \(momentum)")
            }
            let rv = t["running_var"]!
            if let k = rv.scalars.firstIndex(where: { $0 < 0 }) {
                throw CaseError("inputs.running_var.data[\(k)]", "expected a variance ≥ 0, found \(rv[k])")
            }
            return BatchNorm2D(weight: t["weight"]!, bias: t["bias"]!, runningMean: t["running_mean"]!, runningVar: rv,
                               training: training, eps: eps, momentum: momentum)
        },
        LayerSpec(id: LRN.id, inputs: ["x"], optionalInputs: [], isLoss: false, configFields: ["size", "alpha", "beta", "k"]) { c, _, _ throws(CaseError) in
            let size = try c.int("size", minimum: 1, default: nil)
            let alpha = try c.double("alpha", meaning: "the scale, divided by size (PyTorch, Caffe, ONNX; TensorFlow's alpha is not divided); AlexNet uses 1e-4")
            guard alpha >= 0 else { throw CaseError("config.alpha", "expected alpha ≥ 0 (so that k + alpha/size·Σa² > 0), found \(alpha)") }
            let beta = try c.double("beta", meaning: "the exponent; AlexNet uses 0.75")
            let k = try c.double("k", meaning: "the additive constant; AlexNet uses 2, PyTorch defaults to 1")
            guard k > 0 else { throw CaseError("config.k", "expected k > 0 (so that k + alpha/size·Σa² > 0 for every input, even all zeros), found \(k)") }
            return LRN(size: size, alpha: alpha, beta: beta, k: k)
        },
    ]

    /// x1, x2, … of a variadic layer, in order (the decoder has checked they are consecutive).
    static func others(_ t: [String: Tensor]) -> [Tensor] {
        (1...).lazy.map { t["x\($0)"] }.prefix { $0 != nil }.map { $0! }
    }

    public static var ids: [String] { specs.map(\.id) }
    public static func spec(_ id: String) -> LayerSpec? { specs.first { $0.id == id } }

    /// The layer a case describes; config errors name the field.
    public static func makeLayer(_ c: Case) throws(CaseError) -> any Layer {
        guard let spec = spec(c.layer) else { throw CaseError("layer", "unknown layer \"\(c.layer)\"") }
        var reader = ConfigReader(c.config)
        var tensors: [String: Tensor] = [:]
        for input in c.inputs { tensors[input.name] = input.tensor }
        let layer = try spec.build(&reader, tensors, c.labels ?? [])
        try reader.finish(known: spec.configFields)
        return layer
    }
}

// MARK: - Configuration as written

extension Conv2D {
    public var configuration: [(String, JSON)] {
        [("stride", ints(stride)), ("padding", ints(padding)), ("dilation", ints(dilation)), ("groups", .int(groups))]
    }
}

extension PoolWindow {
    var configuration: [(String, JSON)] {
        [("kernel", ints(kernel)), ("stride", ints(stride)), ("padding", ints(padding)),
         ("dilation", ints(dilation)), ("ceil_mode", .bool(ceilMode))]
    }
}

extension MaxPool2D { public var configuration: [(String, JSON)] { window.configuration } }
extension AvgPool2D {
    public var configuration: [(String, JSON)] { window.configuration + [("count_include_pad", .bool(countIncludePad))] }
}
extension LeakyReLU { public var configuration: [(String, JSON)] { [("slope", .double(slope))] } }
extension ELU { public var configuration: [(String, JSON)] { [("alpha", .double(alpha))] } }
extension Maxout { public var configuration: [(String, JSON)] { [("pieces", .int(pieces))] } }
extension Softmax { public var configuration: [(String, JSON)] { [("axis", .int(axis))] } }
extension LogSoftmax { public var configuration: [(String, JSON)] { [("axis", .int(axis))] } }
extension SoftmaxCrossEntropy { public var configuration: [(String, JSON)] { [("reduction", .string(reduction.rawValue))] } }
extension MulticlassHinge {
    public var configuration: [(String, JSON)] { [("margin", .double(margin)), ("reduction", .string(reduction.rawValue))] }
}

func ints(_ values: [Int]) -> JSON { .array(values.map { .int($0) }) }

// MARK: - Evaluation and encoding

extension Case {
    /// Computes the outputs and gradients, writes every config field out and
    /// adds the notes (such as windows that do not tile). For a loss the
    /// gradients are of the loss itself; for a layer, of ⟨upstream, output⟩.
    public func evaluated() throws(CaseError) -> Case {
        let layer = try LayerRegistry.makeLayer(self)
        guard let x = input(layer.inputName) else { throw CaseError("inputs.\(layer.inputName)", "missing required input") }
        let outShape = try layer.outputShape(forInput: x.shape)
        let dy: Tensor
        if let upstream {
            guard upstream.shape == outShape else {
                throw CaseError("upstream.shape", "expected the output shape \(outShape), found \(upstream.shape)")
            }
            dy = upstream
        } else if outShape.isEmpty {
            dy = Tensor(scalar: 1)
        } else {
            throw CaseError("upstream", "missing required field: dL/d(output), shape \(outShape)")
        }
        let y = layer.forward(x)
        let g = layer.backward(x, outputGradient: dy)
        var out = self
        out.config = layer.configuration
        out.inputs = [NamedTensor(layer.inputName, x)] + layer.parameters + layer.buffers
        out.notes = notes.filter { !$0.hasPrefix("\(self.layer): ") } + layer.notes(forInput: x.shape)
        if !layer.learnableParameters.isEmpty {
            let parts = layer.learnableParameters.map { "\($0.name) \($0.tensor.shape.shapeText) = \($0.tensor.count)" }
            out.notes.append("\(self.layer): \(layer.parameterCount) learnable parameters: \(parts.joined(separator: ", "))")
        }
        out.expected = Expected(
            outputs: [NamedTensor(layer.outputName, y)] + layer.auxiliaryOutputs(x),
            gradients: [NamedTensor(layer.inputName, g.input)]
                + zip(layer.parameters, g.parameters).map { NamedTensor($0.name, $1) })
        if let tangents {
            let t = try ForwardMode.conform(tangents, of: self, layer, input: x.shape, output: outShape)
            out.tangents = t
            out.expected!.jvp = [NamedTensor(layer.outputName, try ForwardMode.jvp(out, layer: layer, tangents: t))]
            if ForwardMode.doubleBackwardLayers.contains(self.layer) {
                out.expected!.doubleBackward = try ForwardMode.doubleBackward(out, layer: layer, cotangents: t)
            }
        }
        return out
    }

    public var json: JSON {
        var members: [(String, JSON)] = [
            ("schema", .string(tangents == nil ? CaseFormat.schema : ForwardMode.schema)), ("id", .string(id)), ("layer", .string(layer)),
            ("description", .string(description)),
        ]
        if !tags.isEmpty { members.append(("tags", .array(tags.map(JSON.string)))) }
        if !notes.isEmpty { members.append(("notes", .array(notes.map(JSON.string)))) }
        members.append(("config", .object(config)))
        members.append(("inputs", .object(inputs.map { ($0.name, $0.tensor.json) })))
        if let labels { members.append(("labels", ints(labels))) }
        if let upstream { members.append(("upstream", upstream.json)) }
        if let tangents { members.append(("tangents", .object(tangents.map { ($0.name, $0.tensor.json) }))) }
        if let expected {
            members.append(("expected", .object([
                ("outputs", .object(expected.outputs.map { ($0.name, $0.tensor.json) })),
                ("gradients", .object(expected.gradients.map { ($0.name, $0.tensor.json) })),
            ] + (tangents == nil ? [] : [("jvp", .object(expected.jvp.map { ($0.name, $0.tensor.json) }))])
              + (expected.doubleBackward.isEmpty ? [] : [("double_backward", .object(expected.doubleBackward.map { ($0.name, $0.tensor.json) }))]))))
        }
        return .object(members)
    }
}

extension Tensor {
    public var json: JSON {
        .object([("shape", ints(shape)), ("data", .array(scalars.map(JSON.double)))])
    }
}
