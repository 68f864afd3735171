import Foundation

// Forward mode and double backward of the layers of issue 14 (see SecondOrder.swift).

// MARK: - Linear maps

// add, concat, flatten, dropout and adaptive_avgpool2d are linear in their data inputs (the
// further inputs of add and concat ride in `parameters`; dropout's mask is a buffer), so the JVP
// is the layer applied to the tangents, correctly rounded like the forward pass; the backward
// pass does not depend on x, so the double backward's x and parameter parts are 0 and its
// upstream part is the JVP along w.

/// The double backward of a layer linear in its inputs: zeros for x and every parameter.
func linearDoubleBackward(_ layer: some SecondOrder, _ x: Tensor, _ w: Tangents) -> DoubleBackward {
    DoubleBackward(gradients: Gradients(input: Tensor(zeros: x.shape), parameters: layer.parameters.map { Tensor(zeros: $0.tensor.shape) }),
                   outputGradient: layer.jvp(x, tangents: w))
}

extension Add: SecondOrder {
    public func jvp(_ x: Tensor, tangents t: Tangents) -> Tensor { Add(others: t.parameters).forward(t.input) }
    public func doubleBackward(_ x: Tensor, outputGradient u: Tensor, cotangents w: Tangents) -> DoubleBackward { linearDoubleBackward(self, x, w) }
}

extension Concat: SecondOrder {
    public func jvp(_ x: Tensor, tangents t: Tangents) -> Tensor { Concat(axis: axis, others: t.parameters).forward(t.input) }
    public func doubleBackward(_ x: Tensor, outputGradient u: Tensor, cotangents w: Tangents) -> DoubleBackward { linearDoubleBackward(self, x, w) }
}

extension Flatten: SecondOrder {
    public func jvp(_ x: Tensor, tangents t: Tangents) -> Tensor { forward(t.input) }
    public func doubleBackward(_ x: Tensor, outputGradient u: Tensor, cotangents w: Tangents) -> DoubleBackward { linearDoubleBackward(self, x, w) }
}

extension Dropout: SecondOrder {
    public func jvp(_ x: Tensor, tangents t: Tangents) -> Tensor { forward(t.input) }
    public func doubleBackward(_ x: Tensor, outputGradient u: Tensor, cotangents w: Tangents) -> DoubleBackward { linearDoubleBackward(self, x, w) }
}

extension AdaptiveAvgPool2D: SecondOrder {
    public func jvp(_ x: Tensor, tangents t: Tangents) -> Tensor { forward(t.input) }
    public func doubleBackward(_ x: Tensor, outputGradient u: Tensor, cotangents w: Tangents) -> DoubleBackward { linearDoubleBackward(self, x, w) }
}

// MARK: - Batch norm

extension BatchNorm2D: SecondOrder {
    /// Per channel: the indices, x̂ and σ̂ = √(σ² + ε) (batch or running statistics), in double-double sums.
    func normalised(_ x: Tensor) -> [(idx: [Int], xhat: [Double], sigma: Double)] {
        (0..<x.shape[1]).map { c in
            let idx = indices(x.shape, c), values = idx.map { x[$0] }
            let (mu, denominator) = plainStatistics(values, c)
            let sigma = denominator.squareRoot()
            return (idx, values.map { ($0 - mu) / sigma }, sigma)
        }
    }

    static func mean(_ v: [Double]) -> Double { CompensatedSum.sum(dividedBy: Double(v.count)) { acc in for e in v { acc.add(e) } } }
    static func meanProduct(_ a: [Double], _ b: [Double]) -> Double {
        CompensatedSum.sum(dividedBy: Double(a.count)) { acc in for (p, q) in zip(a, b) { acc.add(p, times: q) } }
    }

    /// ẏ = γ̇·x̂ + β̇ + γ/σ̂·(ẋ − mean ẋ − x̂·mean(x̂·ẋ)) in training (x ↦ x̂ is symmetric, so this is
    /// the backward pass's map), γ̇·x̂ + β̇ + γ·ẋ/σ̂ in eval.
    public func jvp(_ x: Tensor, tangents t: Tangents) -> Tensor {
        var y = Tensor(zeros: x.shape)
        for (c, ch) in normalised(x).enumerated() {
            let tx = ch.idx.map { t.input[$0] }
            let (mt, mxt) = (Self.mean(tx), Self.meanProduct(ch.xhat, tx))
            for (k, i) in ch.idx.enumerated() {
                let inner = training ? tx[k] - mt - ch.xhat[k] * mxt : tx[k]
                y[i] = t.parameters[0][c] * ch.xhat[k] + t.parameters[1][c] + weight[c] / ch.sigma * inner
            }
        }
        return y
    }

    /// With g = (dx, dγ, dβ) and F = ⟨w, g⟩, per channel (ū = mean u, m̄ = mean(u·x̂), W₁ = Σw,
    /// Wₓ = Σw·x̂, W_u = Σw·u, using ∂x̂_i/∂x_j = (δ_ij − 1/m − x̂_i·x̂_j/m)/σ̂ and ∂σ̂/∂x_j = x̂_j/m):
    /// ∂F/∂x_j = −γx̂_j/(mσ̂²)·(W_u − ū·W₁ − m̄·Wₓ) − γ/σ̂²·(Wₓ/m·(u_j − ū − x̂_j·m̄) + m̄·(w_j − w̄ − x̂_j·Wₓ/m))
    ///           + w_γ/σ̂·(u_j − ū − x̂_j·m̄),
    /// ∂F/∂γ = (W_u − ū·W₁ − m̄·Wₓ)/σ̂, ∂F/∂β = 0, ∂F/∂u the JVP along w. Eval: ∂F/∂x_j = w_γ·u_j/σ̂,
    /// ∂F/∂γ = W_u/σ̂.
    public func doubleBackward(_ x: Tensor, outputGradient u: Tensor, cotangents w: Tangents) -> DoubleBackward {
        var dx = Tensor(zeros: x.shape), dgamma = Tensor(zeros: weight.shape)
        for (c, ch) in normalised(x).enumerated() {
            let us = ch.idx.map { u[$0] }, ws = ch.idx.map { w.input[$0] }
            let m = Double(us.count), s = ch.sigma, g = weight[c], wg = w.parameters[0][c]
            let ubar = Self.mean(us), mbar = Self.meanProduct(us, ch.xhat)
            let w1 = Self.mean(ws) * m, wx = Self.meanProduct(ws, ch.xhat) * m, wu = Self.meanProduct(ws, us) * m
            guard training else {
                for (k, i) in ch.idx.enumerated() { dx[i] = wg * us[k] / s }
                dgamma[c] = wu / s
                continue
            }
            let bracket = wu - ubar * w1 - mbar * wx
            for (k, i) in ch.idx.enumerated() {
                let r = us[k] - ubar - ch.xhat[k] * mbar
                dx[i] = -g * ch.xhat[k] / (m * s * s) * bracket
                    - g / (s * s) * (wx / m * r + mbar * (ws[k] - w1 / m - ch.xhat[k] * wx / m))
                    + wg / s * r
            }
            dgamma[c] = bracket / s
        }
        return DoubleBackward(gradients: Gradients(input: dx, parameters: [dgamma, Tensor(zeros: bias.shape)]),
                              outputGradient: jvp(x, tangents: w))
    }
}

// MARK: - LRN

extension LRN: SecondOrder {
    /// The channels c whose window holds channel j.
    func covering(_ j: Int, channels: Int) -> [Int] { (0..<channels).filter { window($0, channels: channels).contains(j) } }

    /// ḃ_c = ȧ_c·S_c^−β − β·a_c·S_c^(−β−1)·(2α/size)·Σ_{j ∈ window(c)} a_j·ȧ_j.
    public func jvp(_ x: Tensor, tangents t: Tangents) -> Tensor {
        let s = x.shape, plane = s[2] * s[3], ch = s[1], b = plainBases(x)
        return Tensor(shape: s, scalars: (0..<x.count).map { i in
            let (n, c, p) = (i / (ch * plane), (i / plane) % ch, i % plane)
            let dot = CompensatedSum.sum { acc in
                for j in window(c, channels: ch) { let k = (n * ch + j) * plane + p; acc.add(x[k], times: t.input[k]) }
            }
            return t.input[i] * pow(b[i], -beta) - beta * x[i] * pow(b[i], -beta - 1) * 2 * alpha / Double(size) * dot
        })
    }

    /// With P = S^−β, Q = S^(−β−1), Q' = (−β−1)·S^(−β−2), κ = 2αβ/size, R_c = Σ_{j ∈ window(c)} w_j·a_j:
    /// F = ⟨w, dx⟩ = Σ_c u_c·(w_c·P_c − κ·a_c·Q_c·R_c), so
    /// ∂F/∂a_k = −κ·a_k·Σ_{c ∋ k} u_c·w_c·Q_c − κ·u_k·Q_k·R_k − κ·(2α/size)·a_k·Σ_{c ∋ k} u_c·a_c·R_c·Q'_c
    ///           − κ·w_k·Σ_{c ∋ k} u_c·a_c·Q_c,
    /// and ∂F/∂u the JVP along w.
    public func doubleBackward(_ x: Tensor, outputGradient u: Tensor, cotangents w: Tangents) -> DoubleBackward {
        let s = x.shape, plane = s[2] * s[3], ch = s[1], b = plainBases(x)
        let kappa = 2 * alpha * beta / Double(size), scale = 2 * alpha / Double(size)
        let q = b.map { pow($0, -beta - 1) }, q1 = b.map { (-beta - 1) * pow($0, -beta - 2) }
        let r = (0..<x.count).map { i -> Double in
            let (n, c, p) = (i / (ch * plane), (i / plane) % ch, i % plane)
            return CompensatedSum.sum { acc in
                for j in window(c, channels: ch) { let k = (n * ch + j) * plane + p; acc.add(w.input[k], times: x[k]) }
            }
        }
        let dx = (0..<x.count).map { k -> Double in
            let (n, j, p) = (k / (ch * plane), (k / plane) % ch, k % plane)
            var t1 = 0.0, t3 = 0.0, t4 = 0.0
            for c in covering(j, channels: ch) {
                let i = (n * ch + c) * plane + p
                t1 += u[i] * w.input[i] * q[i]
                t3 += u[i] * x[i] * r[i] * q1[i]
                t4 += u[i] * x[i] * q[i]
            }
            return -kappa * x[k] * t1 - kappa * u[k] * q[k] * r[k] - kappa * scale * x[k] * t3 - kappa * w.input[k] * t4
        }
        return DoubleBackward(gradients: Gradients(input: Tensor(shape: s, scalars: dx)), outputGradient: jvp(x, tangents: w))
    }
}
