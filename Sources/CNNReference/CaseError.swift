/// A problem with a case, its configuration or its tensors: what was found,
/// what was expected, and where (a JSON path such as `inputs.weight.shape`).
///
/// `description` is one line, so the command-line tool can print
/// `FILE: PATH: MESSAGE` and exit with status 2.
public struct CaseError: Error, Equatable, CustomStringConvertible, Sendable {
    /// The JSON path of the offending field; empty for the whole document.
    public var field: String
    public var message: String

    public init(_ field: String, _ message: String) {
        self.field = field
        self.message = message
    }

    public var description: String { field.isEmpty ? message : "\(field): \(message)" }
}
