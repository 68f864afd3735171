import Foundation

/// `Vectors/` of this checkout, found from this file's path (no bundled resources).
let vectorsDirectory: String = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Vectors").path
