/// Bad configurations of the layers of issue 14, each rejected with its arithmetic.
extension BadInputTests {
    static let add = """
        {"schema": "cnnref-case-1", "id": "t/add", "layer": "add",
         "inputs": {"x0": {"shape": [2, 2], "data": [1, 2, 3, 4]}, "x1": {"shape": [2, 2], "data": [1, 2, 3, 4]}},
         "upstream": {"shape": [2, 2], "data": [1, 1, 1, 1]}}
        """
    static let concat = edit(edit(add, "\"add\"", "\"concat\", \"config\": {\"axis\": 1}"), "[2, 2], \"data\": [1, 1, 1, 1]", "[2, 4], \"data\": [1, 1, 1, 1, 1, 1, 1, 1]")
    static let dropout = """
        {"schema": "cnnref-case-1", "id": "t/dropout", "layer": "dropout", "config": {"p": 0.5},
         "inputs": {"x": {"shape": [3], "data": [1, 2, 3]}, "mask": {"shape": [3], "data": [1, 0, 1]}},
         "upstream": {"shape": [3], "data": [1, 1, 1]}}
        """
    static let adaptive = """
        {"schema": "cnnref-case-1", "id": "t/ap", "layer": "adaptive_avgpool2d", "config": {"output_size": [1, 1]},
         "inputs": {"x": {"shape": [1, 1, 2, 2], "data": [1, 2, 3, 4]}}, "upstream": {"shape": [1, 1, 1, 1], "data": [1]}}
        """
    static let batchnorm = """
        {"schema": "cnnref-case-1", "id": "t/bn", "layer": "batchnorm2d", "config": {"training": true, "eps": 1e-5, "momentum": 0.1},
         "inputs": {"x": {"shape": [2, 1, 1, 2], "data": [1, 2, 3, 4]}, "weight": {"shape": [1], "data": [1]}, "bias": {"shape": [1], "data": [0]},
                    "running_mean": {"shape": [1], "data": [0]}, "running_var": {"shape": [1], "data": [1]}},
         "upstream": {"shape": [2, 1, 1, 2], "data": [1, 1, 1, 1]}}
        """
    static let lrn = """
        {"schema": "cnnref-case-1", "id": "t/lrn", "layer": "lrn", "config": {"size": 5, "alpha": 1e-4, "beta": 0.75, "k": 2},
         "inputs": {"x": {"shape": [1, 2, 1, 1], "data": [1, 2]}}, "upstream": {"shape": [1, 2, 1, 1], "data": [1, 1]}}
        """

    static let architectureTable: [BadInput] = [
        BadInput(name: "add with one input", file: edit(add, ", \"x1\": {\"shape\": [2, 2], \"data\": [1, 2, 3, 4]}", ""), words: ["inputs.x1", "at least two data inputs", "found 1"]),
        BadInput(name: "add with a gap in the inputs", file: edit(add, "\"x1\":", "\"x2\":"), words: ["inputs.x1", "at least two"]),
        BadInput(name: "add of mismatched shapes", file: edit(add, "\"x1\": {\"shape\": [2, 2], \"data\": [1, 2, 3, 4]}", "\"x1\": {\"shape\": [4], \"data\": [1, 2, 3, 4]}"), words: ["inputs.x1.shape", "expected [2, 2]", "found [4]"]),
        BadInput(name: "concat shapes differing off the axis", file: edit(concat, "\"x1\": {\"shape\": [2, 2], \"data\": [1, 2, 3, 4]}", "\"x1\": {\"shape\": [1, 4], \"data\": [1, 2, 3, 4]}"), words: ["inputs.x1.shape", "expected [2, *]", "except on axis 1", "found [1, 4]"]),
        BadInput(name: "concat axis beyond the rank", file: edit(concat, "\"axis\": 1", "\"axis\": 2"), words: ["config.axis", "0..<2", "found 2"]),
        BadInput(name: "concat without an axis", file: edit(concat, "\"axis\": 1", ""), words: ["config.axis", "missing"]),
        BadInput(name: "dropout p = 1", file: edit(dropout, "0.5}", "1}"), words: ["config.p", "0 ≤ p < 1", "found 1"]),
        BadInput(name: "dropout p negative", file: edit(dropout, "0.5}", "-0.25}"), words: ["config.p", "found -0.25"]),
        BadInput(name: "dropout mask value 0.5", file: edit(dropout, "[1, 0, 1]", "[1, 0.5, 1]"), words: ["inputs.mask.data[1]", "0 (dropped) or 1 (kept)", "found 0.5"]),
        BadInput(name: "dropout mask of the wrong shape", file: edit(dropout, "\"shape\": [3], \"data\": [1, 0, 1]", "\"shape\": [1], \"data\": [1]"), words: ["inputs.mask.shape", "expected x's shape [3]", "found [1]"]),
        BadInput(name: "adaptive pool output_size 0", file: edit(adaptive, "[1, 1]}", "[0, 1]}"), words: ["config.output_size[0]", "found 0"]),
        BadInput(name: "adaptive pool on a rank-2 input", file: edit(adaptive, "[1, 1, 2, 2]", "[2, 2]"), words: ["inputs.x.shape", "rank 4"]),
        BadInput(name: "batchnorm2d training with one value per channel",
                 file: edit(edit(batchnorm, "[2, 1, 1, 2], \"data\": [1, 2, 3, 4]", "[1, 1, 1, 1], \"data\": [1]"), "[2, 1, 1, 2], \"data\": [1, 1, 1, 1]", "[1, 1, 1, 1], \"data\": [1]"),
                 words: ["inputs.x.shape", "more than one value per channel", "N·H·W = 1·1·1 = 1", "0/0"]),
        BadInput(name: "batchnorm2d without training", file: edit(batchnorm, "\"training\": true, ", ""), words: ["config.training", "missing", "true or false"]),
        BadInput(name: "batchnorm2d eps 0", file: edit(batchnorm, "1e-5", "0"), words: ["config.eps", "eps > 0", "found 0"]),
        BadInput(name: "batchnorm2d momentum above 1", file: edit(batchnorm, "\"momentum\": 0.1", "\"momentum\": 1.5"), words: ["config.momentum", "0 ≤ momentum ≤ 1", "found 1.5"]),
        BadInput(name: "batchnorm2d negative running variance", file: edit(batchnorm, "\"running_var\": {\"shape\": [1], \"data\": [1]}", "\"running_var\": {\"shape\": [1], \"data\": [-2]}"),
                 words: ["inputs.running_var.data[0]", "variance ≥ 0", "found -2"]),
        BadInput(name: "batchnorm2d weight not of the channel count", file: edit(batchnorm, "\"weight\": {\"shape\": [1], \"data\": [1]}", "\"weight\": {\"shape\": [2], \"data\": [1, 1]}"),
                 words: ["inputs.weight.shape", "expected [C] = [1]", "found [2]"]),
        BadInput(name: "batchnorm2d without running_var", file: edit(batchnorm, ", \"running_var\": {\"shape\": [1], \"data\": [1]}", ""), words: ["inputs.running_var", "missing"]),
        BadInput(name: "lrn size 0", file: edit(lrn, "\"size\": 5", "\"size\": 0"), words: ["config.size", "found 0"]),
        BadInput(name: "lrn k 0", file: edit(lrn, "\"k\": 2", "\"k\": 0"), words: ["config.k", "k > 0", "found 0"]),
        BadInput(name: "lrn negative alpha", file: edit(lrn, "1e-4", "-1e-4"), words: ["config.alpha", "alpha ≥ 0", "found -0.0001"]),
        BadInput(name: "lrn without beta", file: edit(lrn, "\"beta\": 0.75, ", ""), words: ["config.beta", "missing"]),
        BadInput(name: "lrn on a rank-2 input", file: edit(edit(lrn, "[1, 2, 1, 1], \"data\": [1, 2]", "[1, 2], \"data\": [1, 2]"), "[1, 2, 1, 1], \"data\": [1, 1]", "[1, 2], \"data\": [1, 1]"), words: ["inputs.x.shape", "rank 4"]),
        BadInput(name: "flatten start_axis beyond the rank", file: """
            {"schema": "cnnref-case-1", "id": "t/f", "layer": "flatten", "config": {"start_axis": 2},
             "inputs": {"x": {"shape": [2, 2], "data": [1, 2, 3, 4]}}, "upstream": {"shape": [4], "data": [1, 1, 1, 1]}}
            """, words: ["config.start_axis", "0..<2", "found 2"]),
    ]
}
