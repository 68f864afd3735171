// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "cnn-reference",
    products: [
        .library(name: "CNNReference", targets: ["CNNReference"]),
        .library(name: "GradientCheck", targets: ["GradientCheck"]),
        .library(name: "GoldenVectors", targets: ["GoldenVectors"]),
        .executable(name: "cnnref", targets: ["cnnref"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/attaswift/BigInt", from: "6.0.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.0"),
    ],
    targets: [
        // MARK: - C libraries
        .systemLibrary(
            name: "CGSL", pkgConfig: "gsl",
            providers: [.apt(["libgsl-dev"]), .brew(["gsl"])]),
        .systemLibrary(
            name: "CMPFR", pkgConfig: "mpfr",
            providers: [.apt(["libmpfr-dev"]), .brew(["mpfr"])]),

        // MARK: - Library
        .target(
            name: "CNNReference",
            dependencies: ["CMPFR", .product(name: "BigInt", package: "BigInt")]),
        .target(name: "GradientCheck", dependencies: ["CNNReference", "CGSL"]),
        .target(name: "PrecisionOracle", dependencies: ["CNNReference", "CMPFR"]),
        .target(
            name: "GoldenVectors",
            dependencies: [
                "CNNReference", "CGSL", "GradientCheck", "PrecisionOracle",
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            // The architecture descriptions of `cnnref arch` (cnnref-network-1 files,
            // written by Tools/python/cnnref_networks.py).
            resources: [.copy("Networks")]),

        // MARK: - Tool
        .executableTarget(
            name: "cnnref",
            dependencies: [
                "CNNReference", "GradientCheck", "GoldenVectors", "PrecisionOracle",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),

        .executableTarget(name: "cnnref-fuzz", dependencies: ["GoldenVectors"]),

        // MARK: - Tests
        .testTarget(
            name: "CNNReferenceTests",
            dependencies: ["CNNReference", "GradientCheck", .product(name: "BigInt", package: "BigInt")]),
        .testTarget(name: "GradientCheckTests", dependencies: ["CNNReference", "GradientCheck"]),
        .testTarget(name: "GoldenVectorTests", dependencies: ["CNNReference", "GradientCheck", "GoldenVectors"]),
        .testTarget(name: "CLITests", dependencies: ["cnnref", "GoldenVectors"]),
        .testTarget(name: "PrecisionTests", dependencies: ["CNNReference", "GoldenVectors", "PrecisionOracle"]),
    ],
    swiftLanguageModes: [.v6]
)
