import CNNReference
import GradientCheck

/// The families of input values a case can hold (its first tag). A case applies
/// to a precision when that precision's input format holds every input exactly
/// (`Precision.inputFormat`), so each family decides which precisions judge it.
public enum ValueKind: String, Sendable, CaseIterable {
    /// ±m·2⁻⁶ with 1 ≤ m ≤ 127: exactly representable in bfloat16, float16
    /// (normal range), TF32 and float32, so every engine receives the same
    /// inputs as the reference (benchdnn's trick).
    case exactLowPrecision = "exact-in-low-precision"
    /// Uniform in ±[0, 4) with all 53 significand bits random: stresses the
    /// correctly rounded sums.
    case fullDouble = "full-double"
    /// Random float32 values using all 24 significant bits (the last one set), in
    /// ±[1/8, 4): applicable at float32 but rounded by TF32, float16 and bfloat16,
    /// so a TF32 or bfloat16 engine cannot pass as float32.
    case exactFloat32 = "exact-in-float32"
    /// 11 significant bits (the last one set) in float32's exponent range: every
    /// eighth value (the first included) is scaled by 2¹⁶ or 2⁻¹⁶, beyond float16's range.
    case exactTF32 = "exact-in-tf32"
    /// 11 significant bits (the last one set) in ±[1/8, 4): float16's normal range.
    case exactFloat16 = "exact-in-float16"
    /// 8 significant bits (the last one set) in ±[1/8, 4).
    case exactBfloat16 = "exact-in-bfloat16"

    /// The two families of the first catalogue, over its whole matrix.
    public static let original: [ValueKind] = [.exactLowPrecision, .fullDouble]
    /// The families that use each low-precision format's whole significand.
    public static let perFormat: [ValueKind] = [.exactFloat32, .exactTF32, .exactFloat16, .exactBfloat16]

    /// The suffix of case ids of this family.
    var short: String {
        switch self {
        case .exactLowPrecision: return "exact"
        case .fullDouble: return "double"
        case .exactFloat32: return "f32"
        case .exactTF32: return "tf32"
        case .exactFloat16: return "f16"
        case .exactBfloat16: return "bf16"
        }
    }
}

/// The golden-vector catalogue: every case the package ships, written as code
/// (one function per layer, like ONNX's `expect(...)` cases). Inputs come from
/// GSL's Mersenne Twister seeded per case id, so a case does not change when
/// another is added. `Generator` computes the expected values.
public struct Catalogue: Sendable {
    public private(set) var cases: [Case] = []
    /// The whole-network vectors (`Vectors/networks/ID.json`, `cnnref-network-1` with
    /// `expected`): every block of `Architectures.blockNames` with seeded data.
    public private(set) var networks: [NetworkFile] = []

    public init() {
        conv2d()
        pooling()
        activations()
        fullyConnected()
        softmax()
        losses()
        perFormatFamilies()
        probes()
        certifiedEdges()
        architectureLayers()
        forwardModeVectors()
        networkVectors()
    }

    // MARK: - Whole networks

    /// Each block file filled from a generator seeded by `networks/ID`: every parameter, the
    /// input and the upstream exact in float32 (±[1/8, 4), 24 significant bits), running
    /// variances their absolute values, so float64 and float32 engines receive exactly the
    /// reference's inputs.
    mutating func networkVectors() {
        for name in Architectures.blockNames {
            var file = try! Architectures.loadBlock(name)   // shipped files: a failure is a bug
            let rng = Self.random(for: "networks/\(file.id)")
            for n in file.nodes.indices {
                for t in file.nodes[n].tensors.indices {
                    let spec = file.nodes[n].tensors[t]
                    let v = Self.values(spec.shape.reduce(1, *), .exactFloat32, rng)
                    file.nodes[n].tensors[t].data = spec.name == "running_var" ? v.map(abs) : v
                }
            }
            file.inputData = Self.values(file.inputShape.reduce(1, *), .exactFloat32, rng)
            let out = try! file.summary().nodes.last!.outputShape
            if !out.isEmpty { file.upstream = Self.tensor(out, .exactFloat32, rng) }
            file.description += ". Values exact in float32 (24 significant bits in ±[1/8, 4); running variances positive). "
                + "Every node's output, the gradient reaching it and every parameter's gradient is correctly rounded given the stored "
                + "values it is computed from (the node's inputs, its output's gradient): what a float64 engine that stores every "
                + "intermediate and rounds each node perfectly produces, not the correctly rounded composition. A gradient that reaches "
                + "a node from several readers is their exact sum rounded once. "
                + (file.nodes.contains { $0.config.contains { $0.0 == "training" && $0.1 == .bool(true) } }
                    ? "Batch norm in training mode (batch statistics, the biased variance; the updated running statistics are not outputs of the network)"
                    : "Batch norm in evaluation mode (running statistics)")
            networks.append(file)
        }
    }

    // MARK: - Building blocks

    /// Appends cases built from others (the forward-mode twins).
    mutating func append(_ more: [Case]) {
        for c in more { precondition(!cases.contains { $0.id == c.id }, "duplicate case id \(c.id)") }
        cases += more
    }

    /// A generator seeded from the case id (FNV-1a of its bytes).
    static func random(for id: String) -> SeededRandom {
        var hash: UInt64 = 0xcbf29ce484222325
        for b in id.utf8 { hash = (hash ^ UInt64(b)) &* 0x100000001b3 }
        return SeededRandom(seed: UInt(hash % 4_294_967_291))
    }

    static func values(_ count: Int, _ kind: ValueKind, _ rng: SeededRandom) -> [Double] {
        (0..<count).map { i in
            switch kind {
            case .exactLowPrecision: return rng.sign() * Double(1 + rng.below(127)) / 64
            case .fullDouble: return 4 * rng.signedUnit()
            case .exactFloat32: return fullSignificand(24, rng)
            case .exactTF32:
                let v = fullSignificand(11, rng)
                return i % 8 == 0 ? v * (rng.below(2) == 0 ? 0x1p16 : 0x1p-16) : v
            case .exactFloat16: return fullSignificand(11, rng)
            case .exactBfloat16: return fullSignificand(8, rng)
            }
        }
    }

    /// ±(1 + k/2ᵖ⁻¹)·2ᵉ with e in −3…1 and the lowest of the p bits set: a value that
    /// needs every one of p significant bits.
    static func fullSignificand(_ p: Int, _ rng: SeededRandom) -> Double {
        let fraction = rng.below(1 << (p - 1)) | 1
        let m = 1 + Double(fraction) / Double(1 << (p - 1))
        return rng.sign() * m * Double(sign: .plus, exponent: rng.below(5) - 3, significand: 1)
    }

    static func tensor(_ shape: [Int], _ kind: ValueKind, _ rng: SeededRandom) -> Tensor {
        Tensor(shape: shape, scalars: values(shape.reduce(1, *), kind, rng))
    }

    /// Adds a case; the upstream is drawn with the inputs' kind. Inputs are
    /// redrawn (up to 50 times) while `avoid` says they sit on a kink or tie.
    mutating func add(_ layer: String, _ name: String, _ description: String, kind: ValueKind, tags: [String] = [],
                      config: [(String, JSON)] = [], labels: ((SeededRandom) -> [Int])? = nil,
                      avoid: ((Case) -> Bool)? = nil,
                      _ inputs: (SeededRandom) -> [NamedTensor]) {
        let id = "\(layer)/\(name)"
        precondition(!cases.contains { $0.id == id }, "duplicate case id \(id)")
        let rng = Self.random(for: id)
        var c = Case(id: id, layer: layer, description: description, tags: [kind.rawValue] + tags,
                     config: config, inputs: [])
        for _ in 0..<50 {
            c.inputs = inputs(rng)
            c.labels = labels?(rng)
            if let avoid, avoid(c) { continue }
            break
        }
        if let spec = LayerRegistry.spec(layer), !spec.isLoss {
            let layerValue = try! LayerRegistry.makeLayer(c)
            let shape = try! layerValue.outputShape(forInput: c.inputs[0].tensor.shape)
            c.upstream = Self.tensor(shape, kind, rng)
        }
        cases.append(c)
    }

    /// A case with explicit values (edge cases, kinks, ties, the lecture's examples).
    mutating func addExact(_ layer: String, _ name: String, _ description: String, kind: ValueKind = .exactLowPrecision,
                           tags: [String], config: [(String, JSON)] = [], labels: [Int]? = nil,
                           upstream: Tensor? = nil, _ inputs: [NamedTensor]) {
        let id = "\(layer)/\(name)"
        precondition(!cases.contains { $0.id == id }, "duplicate case id \(id)")
        var c = Case(id: id, layer: layer, description: description, tags: [kind.rawValue] + tags,
                     config: config, inputs: inputs, labels: labels)
        if let spec = LayerRegistry.spec(layer), !spec.isLoss {
            if let upstream {
                c.upstream = upstream
            } else {
                let layerValue = try! LayerRegistry.makeLayer(c)
                let shape = try! layerValue.outputShape(forInput: inputs[0].tensor.shape)
                c.upstream = Self.tensor(shape, .exactLowPrecision, Self.random(for: id))
            }
        }
        cases.append(c)
    }

    /// True when a small random perturbation of the inputs changes the layer's
    /// active set: the point is on (or extremely near) a kink or tie.
    static func onKinkOrTie(_ c: Case) -> Bool {
        guard let layer = try? LayerRegistry.makeLayer(c) else { return false }
        let x = c.inputs[0].tensor
        let here = layer.activeSet(x)
        guard !here.isEmpty else { return false }
        let rng = SeededRandom(seed: 99)
        for _ in 0..<8 {
            var moved = layer
            var mx = x
            for i in 0..<mx.count { mx[i] += rng.sign() * 0x1p-30 * max(mx[i].magnitude, 0x1p-10) }
            for p in moved.parameters.indices {
                for i in 0..<moved.parameters[p].tensor.count {
                    let v = moved.parameters[p].tensor[i]
                    moved.parameters[p].tensor[i] = v + rng.sign() * 0x1p-30 * max(v.magnitude, 0x1p-10)
                }
            }
            if moved.activeSet(mx) != here { return true }
        }
        return false
    }

    static let conventions: [String: String] = [
        Conv2D.id: "Layout NCHW, weight OIHW [K, C/groups, FH, FW]; padding [top, left, bottom, right] of zeros; dilation 1 = dense; cross-correlation (no kernel flip); output size floor((H + top + bottom - dilation*(FH-1) - 1)/stride) + 1. Outputs and gradients are the exact values rounded once to double.",
        MaxPool2D.id: "Layout NCHW; padding [top, left, bottom, right] never wins (padded cells are skipped); ties: the first maximum in row-major window order takes the whole gradient; a NaN wins its window (the first NaN); ceil_mode drops a last window that would start in the end padding.",
        AvgPool2D.id: "Layout NCHW; padding [top, left, bottom, right]; count_include_pad true divides by the taps inside the padded input (never the extra ceil-mode overhang, PyTorch's rule), false by the taps inside the input; each output the exact window sum divided once.",
        ReLU.id: "y = max(0, x); derivative 0 at x = 0 (PyTorch).",
        LeakyReLU.id: "y = x for x > 0 else slope*x; derivative at x = 0 is slope (PyTorch).",
        PReLU.id: "y = x for x > 0 else slope[c]*x with c the channel (axis 1), or one shared slope [1]; derivative at 0 is the slope; dL/dslope sums over batch and space.",
        ELU.id: "y = x for x > 0 else alpha*(exp(x) - 1); derivative at x = 0 is alpha (negative branch, PyTorch).",
        Sigmoid.id: "y = 1/(1 + exp(-x)).",
        Tanh.id: "y = tanh(x).",
        Swish.id: "y = x*sigmoid(beta*x) with learnable beta [1] (beta = 1 is SiLU).",
        Maxout.id: "y[n,m] = max_j (x W_j^T + b_j)[n,m], weight [k, M, D], bias [k, M]; ties: the lowest-numbered piece wins and takes the gradient.",
        Linear.id: "y = x W^T + b with weight [M, D] (out x in, PyTorch's layout).",
        Softmax.id: "Softmax along config.axis with the maximum subtracted; -Infinity entries give 0; a slice of all -Infinity gives NaN.",
        LogSoftmax.id: "Log-softmax along config.axis with the maximum subtracted.",
        SoftmaxCrossEntropy.id: "Cross-entropy of softmax(scores) with integer labels, from logits, unweighted, no label smoothing; reduction mean divides the sum over rows by N.",
        Add.id: "y = x0 + x1 + ... elementwise (residual connections), the exact sum rounded once; -0 + -0 = -0, any other exact zero +0; every input's gradient is dL/dy.",
        Concat.id: "Inputs x0, x1, ... joined along config.axis (0-based; NCHW axis 1 is channels, GoogLeNet/DenseNet), equal on every other axis; an exact copy; each input's gradient is its slab of dL/dy (torch.cat, ONNX Concat).",
        Flatten.id: "Axes start_axis ... rank-1 merged row-major (PyTorch flatten(start_dim), default 1); ONNX Flatten(axis) always gives rank 2 [prod(shape[..<axis]), prod(shape[axis...])]: the same elements, and the same shape when start_axis is 1 (or 0, with a leading 1); an exact copy.",
        Dropout.id: "Inverted dropout with the mask given (0 dropped, 1 kept, no gradient): y = x*mask/(1 - p) with 1/(1 - p) the real value for the double p, x/(1 - p) rounded once; a dropped element is x*0 (sign of x; NaN for infinite x); dx = dy*mask/(1 - p) (PyTorch F.dropout in training).",
        AdaptiveAvgPool2D.id: "Layout NCHW; output row i averages input rows floor(i*H/oh) ..< ceil((i+1)*H/oh), columns likewise (PyTorch adaptive_avg_pool2d); windows may overlap or differ in size; [1, 1] is global average pooling (ONNX GlobalAveragePool); each output the exact window sum divided once, each gradient the exact sum of dy/size over covering windows rounded once.",
        BatchNorm2D.id: "Layout NCHW; weight (gamma), bias (beta), running_mean, running_var [C]; running_mean and running_var are buffers (no gradients). training true: y = gamma*(x - mean)/sqrt(var + eps) + beta with the batch mean and the biased batch variance (divided by N*H*W) per channel, eps inside the square root, gradients through the batch statistics; outputs also running_mean = (1 - momentum)*old + momentum*mean and running_var = (1 - momentum)*old + momentum*unbiased variance (divided by N*H*W - 1) (PyTorch F.batch_norm; Keras's momentum is 1 - this one). training false: the running statistics replace the batch's (ONNX BatchNormalization's eval formula), no further outputs. Every value the exact real rounded once.",
        LRN.id: "Layout NCHW; b_c = a_c/(k + alpha/size*sum a_j^2)^beta over channels j = c - floor(size/2) ... c + floor((size-1)/2) that exist (zero-padded floor(size/2) before and floor((size-1)/2) after, PyTorch F.local_response_norm; an even size reaches one channel further back); alpha divided by size always (Caffe, ONNX LRN); TensorFlow's local_response_normalization takes alpha undivided and depth_radius = (size-1)/2. Every value the exact real rounded once.",
        MulticlassHinge.id: "Multiclass SVM (Weston-Watkins) loss: L_i = sum over j != y_i of max(0, s_j - s_y + margin), no division by C (PyTorch's MultiMarginLoss divides by C), power 1; a term exactly at 0 contributes nothing and has gradient 0; reduction mean divides by N.",
    ]

    static func describe(_ layer: String, _ what: String) -> String {
        "\(what). \(conventions[layer] ?? "")"
    }
}

// MARK: - JSON helpers for configs

func ints(_ v: [Int]) -> JSON { .array(v.map { .int($0) }) }
func num(_ v: Double) -> JSON { .double(v) }

extension Catalogue {
    /// The cases small enough to check element by element in seconds: the
    /// built-in matrix of `cnnref gradcheck`, which spans every layer and
    /// configuration of the catalogue (kinks and ties included).
    public var gradcheckMatrix: [Case] {
        cases.filter { c in
            let inputs = c.inputs.reduce(0) { $0 + $1.tensor.count }
            let output = c.upstream?.count ?? 1
            return inputs <= 700 && output <= 1200
        }
    }
}
