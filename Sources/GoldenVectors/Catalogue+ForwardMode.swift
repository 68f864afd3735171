import CNNReference

extension Catalogue {
    /// Forward-mode vectors (`jvp/<case id>`, `cnnref-case-2`): for every layer with golden JVPs
    /// (`ForwardMode.layers`), each of its exact-in-float32 and exact-in-bfloat16 cases and its
    /// first two full-double cases (and, for batch norm, its first in eval mode), with tangents of the same value family seeded by the new id,
    /// so an engine's forward mode is judged at float64, float32 and bfloat16.
    mutating func forwardModeVectors() {
        let families: [ValueKind] = [.exactFloat32, .exactBfloat16, .fullDouble]
        var twins: [Case] = []
        for layer in ForwardMode.layers {
            for kind in families {
                let chosen = cases.filter { $0.layer == layer && $0.tags.first == kind.rawValue }
                var picked = kind == .fullDouble ? Array(chosen.prefix(2)) : chosen
                // Batch norm's two modes are two functions: both get a twin.
                if kind == .fullDouble, layer == BatchNorm2D.id, let eval = chosen.first(where: { c in
                    c.config.contains { $0.0 == "training" && $0.1 == .bool(false) } }), !picked.contains(where: { $0.id == eval.id }) {
                    picked.append(eval)
                }
                for c in picked {
                    let built = try! LayerRegistry.makeLayer(c)   // the catalogue is ours: a failure here is a bug
                    var twin = c
                    twin.id = "jvp/\(c.id)"
                    twin.tags = c.tags + ["jvp"]
                    twin.description = "\(c.description) Forward mode: expected.jvp is the output's derivative along the tangents, correctly rounded."
                    let rng = Self.random(for: twin.id)
                    let shapes = [(built.inputName, c.input(built.inputName)!.shape)] + built.parameters.map { ($0.name, $0.tensor.shape) }
                    twin.tangents = shapes.map { name, shape in
                        NamedTensor(name, Tensor(shape: shape, scalars: Self.values(shape.reduce(1, *), kind, rng)))
                    }
                    twins.append(twin)
                }
            }
        }
        append(twins)
    }
}
