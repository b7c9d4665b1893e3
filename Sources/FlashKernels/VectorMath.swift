import FlashAttentionCore

/// Sixteen floats: one zmm register with AVX-512, two ymm with AVX2. Every kernel works in these.
typealias Lanes = SIMD16<Float>

/// The floats of one vector register of the instruction set this copy is compiled for.
#if FLASHDIST_AVX512
typealias Register = SIMD16<Float>
#else
typealias Register = SIMD8<Float>
#endif

extension Lanes {
    @inline(__always) static func load(_ p: UnsafePointer<Float>) -> Lanes {
        UnsafeRawPointer(p).loadUnaligned(as: Lanes.self)
    }
    @inline(__always) func store(_ p: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(p).storeBytes(of: self, as: Lanes.self)
    }
}

/// Lane-wise max as one compare and blend; a NaN in `a` is kept. (`pointwiseMax` implements IEEE
/// maximum, NaN rules included, and compiles to a scalar loop; so does this same line written
/// generically over SIMD, hence the concrete type.)
@inline(__always) func larger(_ a: Lanes, _ b: Lanes) -> Lanes {
    a.replacing(with: b, where: b .> a)
}

/// e^x for sixteen lanes, within about 1 ulp, for x ≤ 88 (the kernels only exponentiate x ≤ ~0);
/// 0 from x ≤ −88 on (so e^−∞ = 0), and NaN stays NaN.
///
/// Range reduction: x = n·ln2 + r with n = round(x·log₂e) and |r| ≤ ln2/2. ln2 is split into a
/// part exact in float times any n, plus a small correction (Cody–Waite), so r keeps full
/// precision. e^r = 1 + r·q(r) with q of degree 5, fitted on that interval to a relative error
/// of 2.2e−9 (one FMA fewer than the degree-7 Taylor series, and closer). 2^n is written straight
/// into the exponent bits: adding 1.5·2²³ rounds x·log₂e to an integer held in the low mantissa
/// bits, which keeps the whole function in vector instructions. Clamping at −88 gives n = −127,
/// whose exponent field is 0, so 2^n is exactly 0 with no extra select. A NaN passes through
/// every step (its compares are false) and comes out NaN.
@inline(__always) func exp(_ x: Lanes) -> Lanes {
    let roundingMagic = Lanes(repeating: 12_582_912)
    let clamped = larger(x, Lanes(repeating: -88))
    let shifted = roundingMagic.addingProduct(clamped, Lanes(repeating: 1.442_695_04))
    let n = shifted - roundingMagic
    var r = clamped.addingProduct(n, Lanes(repeating: -0.693_145_751_953_125))
    r = r.addingProduct(n, Lanes(repeating: -1.428_606_765_330_187e-6))
    var q = Lanes(repeating: 0.001_385_929_1)
    q = Lanes(repeating: 0.008_374_764).addingProduct(q, r)
    q = Lanes(repeating: 0.041_667_724).addingProduct(q, r)
    q = Lanes(repeating: 0.166_664_21).addingProduct(q, r)
    q = Lanes(repeating: 0.499_999_95).addingProduct(q, r)
    q = Lanes(repeating: 1.000_000_04).addingProduct(q, r)
    let p = Lanes.one.addingProduct(q, r)
    let exponentBits = (unsafeBitCast(shifted, to: SIMD16<Int32>.self) &- 0x4B40_0000 &+ 127) &<< 23
    return p * unsafeBitCast(exponentBits, to: Lanes.self)
}
/// tanh for sixteen lanes with its derivative 1 − tanh², each within a few ulp.
///
/// Near 0 an odd polynomial (x·q(x²), q of degree 5 fitted on |x| ≤ 0.625 to 4e−9) avoids the
/// cancellation in 1 − 2/(e^2|x| + 1), which serves beyond. There the derivative is taken as
/// r·(2 − r) with r = 2/(e^2|x| + 1), not as 1 − tanh², which would cancel to nothing in float
/// once tanh rounds near 1. |x| is clamped at 40, far past where tanh is 1 in float, so e^2|x|
/// stays finite.
@inline(__always) func tanhWithDerivative(_ x: Lanes) -> (value: Lanes, derivative: Lanes) {
    let magnitude = larger(x, -x)
    let x2 = x * x
    var q = Lanes(repeating: -0.005_696_764_7)
    q = Lanes(repeating: 0.020_629_501).addingProduct(q, x2)
    q = Lanes(repeating: -0.053_735_554).addingProduct(q, x2)
    q = Lanes(repeating: 0.133_313_6).addingProduct(q, x2)
    q = Lanes(repeating: -0.333_332_75).addingProduct(q, x2)
    q = Lanes(repeating: 1).addingProduct(q, x2)
    let small = x * q
    let e: Lanes = exp(2 * magnitude.replacing(with: 40, where: magnitude .> 40))
    let r: Lanes = 2 / (e + 1)
    let large = (1 - r).replacing(with: r - 1, where: x .< 0)
    let near = magnitude .<= 0.625
    return (large.replacing(with: small, where: near), (r * (2 - r)).replacing(with: 1 - small * small, where: near))
}

/// Multiplies a row of `count` floats (a whole number of vectors) by `factor`: probabilities by
/// 1/ℓ, the output accumulator by the online softmax's rescale, dQ by the softmax scale.
@inline(__always) func scaleRow(_ row: UnsafeMutablePointer<Float>, count: Int, by factor: Float) {
    var c = 0
    while c < count { (Lanes.load(row + c) * factor).store(row + c); c += lanes }
}

/// Sets every score outside columns first...last of the block to −∞ (all of them when last < first).
@inline(__always) func maskScores(_ row: UnsafeMutablePointer<Float>, count: Int, visibleFrom first: Int, through last: Int) {
    for c in 0..<count where c < first || c > last { row[c] = -.infinity }
}
