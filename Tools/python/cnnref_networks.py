"""Writes the architecture descriptions of `cnnref arch` (cnnref-network-1, shapes only).

    python3 Tools/python/cnnref_networks.py Sources/GoldenVectors/Networks

The files are data: this script is how they were written, kept so a reader can see the
structure of each network in a few lines instead of hundreds of nodes. It is not an
oracle: the tests check the files' totals against torchvision's published counts.
Node ids are torchvision's module names where a module exists (so parameter names are
its `state_dict` keys, e.g. `layer1.0.conv1.weight`); functional steps get descriptive
ids (`layer1.0.add`, `flatten`).

Conventions (SCHEMA.md, "Networks"):
- Networks are in evaluation mode: batch norm uses its running statistics (buffers) and
  dropout, the identity at evaluation with neither parameters nor buffers, is omitted.
- torchvision's GoogLeNet without its auxiliary classifiers (what `googlenet(weights=...)`
  returns and what its 6,624,904 counts), BN eps 0.001, its 3x3 kernel in the "5x5" branch.
- The paper's AlexNet (two-GPU grouped) at 227x227, where its arithmetic holds
  ((227 - 11)/4 + 1 = 55); at 224 conv1 would need padding 2.
- ZFNet at 224x224: conv1 7x7/2 padding 1 and ceil-mode pools give 110, 55, 26, 13, 6.
"""

import json
import os
import sys


class Net:
    def __init__(self, name, description, input_shape):
        self.name, self.description, self.input_shape = name, description, input_shape
        self.nodes = []

    def node(self, id, layer, inputs, config=None, tensors=None):
        if isinstance(inputs, str):
            inputs = [inputs]
        n = {"id": id, "layer": layer, "inputs": inputs}
        if config:
            n["config"] = config
        if tensors:
            n["tensors"] = {k: {"shape": v} for k, v in tensors.items()}
        self.nodes.append(n)
        return id

    # The layers, with torchvision's defaults made explicit.
    def conv(self, id, x, cin, cout, k, stride=1, pad=0, groups=1, bias=True):
        t = {"weight": [cout, cin // groups, k, k]}
        if bias:
            t["bias"] = [cout]
        return self.node(id, "conv2d", x, {"stride": [stride, stride], "padding": [pad] * 4, "groups": groups}, t)

    def bn(self, id, x, c, eps=1e-5, training=False):
        return self.node(id, "batchnorm2d", x, {"training": training, "eps": eps, "momentum": 0.1},
                         {"weight": [c], "bias": [c], "running_mean": [c], "running_var": [c]})

    def relu(self, id, x):
        return self.node(id, "relu", x)

    def maxpool(self, id, x, k, stride, pad=0, ceil=False):
        return self.node(id, "maxpool2d", x, {"kernel": [k, k], "stride": [stride, stride], "padding": [pad] * 4, "ceil_mode": ceil})

    def avgpool(self, id, x, k, stride):
        return self.node(id, "avgpool2d", x, {"kernel": [k, k], "stride": [stride, stride], "count_include_pad": True})

    def adaptive(self, id, x, size):
        return self.node(id, "adaptive_avgpool2d", x, {"output_size": [size, size]})

    def lrn(self, id, x):
        # The AlexNet paper's constants: n = 5, alpha = 1e-4, beta = 0.75, k = 2.
        return self.node(id, "lrn", x, {"size": 5, "alpha": 1e-4, "beta": 0.75, "k": 2.0})

    def flatten(self, id, x):
        return self.node(id, "flatten", x, {"start_axis": 1})

    def linear(self, id, x, din, dout):
        return self.node(id, "linear", x, None, {"weight": [dout, din], "bias": [dout]})

    def add(self, id, xs):
        return self.node(id, "add", xs)

    def concat(self, id, xs):
        return self.node(id, "concat", xs, {"axis": 1})

    def loss(self, id, x, labels):
        self.node(id, "softmax_cross_entropy", x, {"reduction": "mean"})
        self.nodes[-1]["labels"] = labels
        return id

    def json(self):
        return {"schema": "cnnref-network-1", "id": self.name, "description": self.description,
                "input": {"name": "x", "shape": self.input_shape}, "nodes": self.nodes}


def classifier(net, x, din, names=("classifier.1", "classifier.2", "classifier.4", "classifier.5", "classifier.6")):
    fc6, r6, fc7, r7, fc8 = names
    x = net.relu(r6, net.linear(fc6, x, din, 4096))
    x = net.relu(r7, net.linear(fc7, x, 4096, 4096))
    return net.linear(fc8, x, 4096, 1000)


def alexnet():
    n = Net("alexnet", "torchvision's AlexNet (the 'one weird trick' channels 64-192-384-256-256), evaluation mode (dropout omitted)", [1, 3, 224, 224])
    x = n.relu("features.1", n.conv("features.0", "x", 3, 64, 11, 4, 2))
    x = n.maxpool("features.2", x, 3, 2)
    x = n.relu("features.4", n.conv("features.3", x, 64, 192, 5, 1, 2))
    x = n.maxpool("features.5", x, 3, 2)
    x = n.relu("features.7", n.conv("features.6", x, 192, 384, 3, 1, 1))
    x = n.relu("features.9", n.conv("features.8", x, 384, 256, 3, 1, 1))
    x = n.relu("features.11", n.conv("features.10", x, 256, 256, 3, 1, 1))
    x = n.maxpool("features.12", x, 3, 2)
    x = n.flatten("flatten", n.adaptive("avgpool", x, 6))
    classifier(n, x, 256 * 6 * 6)
    return n


def alexnet_paper():
    n = Net("alexnet-paper", "The AlexNet paper's two-GPU network: 96-256-384-384-256 channels, conv2, conv4 and conv5 grouped in two, "
            "ReLU then LRN (n 5, alpha 1e-4, beta 0.75, k 2) after conv1 and conv2, overlapping 3x3/2 max pools; at 227x227, "
            "where (227 - 11)/4 + 1 = 55 holds. Evaluation mode (dropout omitted)", [1, 3, 227, 227])
    x = n.lrn("norm1", n.relu("relu1", n.conv("conv1", "x", 3, 96, 11, 4)))
    x = n.maxpool("pool1", x, 3, 2)
    x = n.lrn("norm2", n.relu("relu2", n.conv("conv2", x, 96, 256, 5, 1, 2, groups=2)))
    x = n.maxpool("pool2", x, 3, 2)
    x = n.relu("relu3", n.conv("conv3", x, 256, 384, 3, 1, 1))
    x = n.relu("relu4", n.conv("conv4", x, 384, 384, 3, 1, 1, groups=2))
    x = n.relu("relu5", n.conv("conv5", x, 384, 256, 3, 1, 1, groups=2))
    x = n.flatten("flatten", n.maxpool("pool5", x, 3, 2))
    classifier(n, x, 256 * 6 * 6, ("fc6", "relu6", "fc7", "relu7", "fc8"))
    return n


def zfnet():
    n = Net("zfnet", "ZFNet (Zeiler & Fergus 2013): conv1 7x7/2 with padding 1, LRN after conv1 and conv2, ceil-mode 3x3/2 max pools "
            "(the published 110-55-26-13-6 path; floor mode gives 109, 54, 12), 96-256-384-384-256 channels. Evaluation mode (dropout omitted)",
            [1, 3, 224, 224])
    x = n.lrn("norm1", n.relu("relu1", n.conv("conv1", "x", 3, 96, 7, 2, 1)))
    x = n.maxpool("pool1", x, 3, 2, ceil=True)
    x = n.lrn("norm2", n.relu("relu2", n.conv("conv2", x, 96, 256, 5, 2)))
    x = n.maxpool("pool2", x, 3, 2, ceil=True)
    x = n.relu("relu3", n.conv("conv3", x, 256, 384, 3, 1, 1))
    x = n.relu("relu4", n.conv("conv4", x, 384, 384, 3, 1, 1))
    x = n.relu("relu5", n.conv("conv5", x, 384, 256, 3, 1, 1))
    x = n.flatten("flatten", n.maxpool("pool5", x, 3, 2, ceil=True))
    classifier(n, x, 256 * 6 * 6, ("fc6", "relu6", "fc7", "relu7", "fc8"))
    return n


def vgg16():
    n = Net("vgg16", "torchvision's VGG-16 (configuration D, no batch norm), evaluation mode (dropout omitted)", [1, 3, 224, 224])
    x, c, i = "x", 3, 0
    for v in [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]:
        if v == "M":
            x = n.maxpool(f"features.{i}", x, 2, 2)
            i += 1
        else:
            x = n.relu(f"features.{i + 1}", n.conv(f"features.{i}", x, c, v, 3, 1, 1))
            c, i = v, i + 2
    x = n.flatten("flatten", n.adaptive("avgpool", x, 7))
    classifier(n, x, 512 * 7 * 7, ("classifier.0", "classifier.1", "classifier.3", "classifier.4", "classifier.6"))
    return n


def googlenet():
    n = Net("googlenet", "torchvision's GoogLeNet: BasicConv2d = conv without bias, batch norm (eps 0.001), ReLU; a 3x3 kernel in the "
            "'5x5' branch (torchvision's, vision#906); ceil-mode max pools; without the auxiliary classifiers (what googlenet(weights=...) "
            "returns in evaluation and what its 6,624,904 parameters count); transform_input off; dropout omitted", [1, 3, 224, 224])

    def basic(id, x, cin, cout, k, stride=1, pad=0):
        x = n.bn(f"{id}.bn", n.conv(f"{id}.conv", x, cin, cout, k, stride, pad, bias=False), cout, eps=1e-3)
        return n.relu(f"{id}.relu", x)

    def inception(id, x, cin, c1, c3r, c3, c5r, c5, pool):
        b1 = basic(f"{id}.branch1", x, cin, c1, 1)
        b2 = basic(f"{id}.branch2.1", basic(f"{id}.branch2.0", x, cin, c3r, 1), c3r, c3, 3, 1, 1)
        b3 = basic(f"{id}.branch3.1", basic(f"{id}.branch3.0", x, cin, c5r, 1), c5r, c5, 3, 1, 1)
        b4 = basic(f"{id}.branch4.1", n.maxpool(f"{id}.branch4.0", x, 3, 1, 1, ceil=True), cin, pool, 1)
        return n.concat(f"{id}.concat", [b1, b2, b3, b4]), c1 + c3 + c5 + pool

    x = basic("conv1", "x", 3, 64, 7, 2, 3)
    x = n.maxpool("maxpool1", x, 3, 2, ceil=True)
    x = basic("conv3", basic("conv2", x, 64, 64, 1), 64, 192, 3, 1, 1)
    x = n.maxpool("maxpool2", x, 3, 2, ceil=True)
    x, c = inception("inception3a", x, 192, 64, 96, 128, 16, 32, 32)
    x, c = inception("inception3b", x, c, 128, 128, 192, 32, 96, 64)
    x = n.maxpool("maxpool3", x, 3, 2, ceil=True)
    for name, cfg in [("4a", (192, 96, 208, 16, 48, 64)), ("4b", (160, 112, 224, 24, 64, 64)), ("4c", (128, 128, 256, 24, 64, 64)),
                      ("4d", (112, 144, 288, 32, 64, 64)), ("4e", (256, 160, 320, 32, 128, 128))]:
        x, c = inception(f"inception{name}", x, c, *cfg)
    x = n.maxpool("maxpool4", x, 2, 2, ceil=True)
    x, c = inception("inception5a", x, c, 256, 160, 320, 32, 128, 128)
    x, c = inception("inception5b", x, c, 384, 192, 384, 48, 128, 128)
    x = n.flatten("flatten", n.adaptive("avgpool", x, 1))
    n.linear("fc", x, c, 1000)
    return n


def resnet(name, description, block, layers, groups=1, width_per_group=64):
    n = Net(name, description, [1, 3, 224, 224])
    x = n.relu("relu", n.bn("bn1", n.conv("conv1", "x", 3, 64, 7, 2, 3, bias=False), 64))
    x = n.maxpool("maxpool", x, 3, 2, 1)
    cin = 64
    for stage, (planes, count) in enumerate(zip([64, 128, 256, 512], layers)):
        for b in range(count):
            stride = 2 if stage > 0 and b == 0 else 1
            p = f"layer{stage + 1}.{b}"
            if block == "basic":
                cout = planes
                y = n.relu(f"{p}.relu1", n.bn(f"{p}.bn1", n.conv(f"{p}.conv1", x, cin, planes, 3, stride, 1, bias=False), planes))
                y = n.bn(f"{p}.bn2", n.conv(f"{p}.conv2", y, planes, planes, 3, 1, 1, bias=False), planes)
            else:
                # torchvision's ResNet v1.5: the stride on the 3x3 conv.
                width = planes * width_per_group // 64 * groups
                cout = planes * 4
                y = n.relu(f"{p}.relu1", n.bn(f"{p}.bn1", n.conv(f"{p}.conv1", x, cin, width, 1, bias=False), width))
                y = n.relu(f"{p}.relu2", n.bn(f"{p}.bn2", n.conv(f"{p}.conv2", y, width, width, 3, stride, 1, groups, bias=False), width))
                y = n.bn(f"{p}.bn3", n.conv(f"{p}.conv3", y, width, cout, 1, bias=False), cout)
            shortcut = x
            if stride != 1 or cin != cout:
                shortcut = n.bn(f"{p}.downsample.1", n.conv(f"{p}.downsample.0", x, cin, cout, 1, stride, bias=False), cout)
            x = n.relu(f"{p}.relu_out", n.add(f"{p}.add", [y, shortcut]))
            cin = cout
    x = n.flatten("flatten", n.adaptive("avgpool", x, 1))
    n.linear("fc", x, cin, 1000)
    return n


def densenet121():
    n = Net("densenet121", "torchvision's DenseNet-121: growth 32, blocks 6-12-24-16, bottleneck 4x32 = 128 channels, compression 0.5; "
            "each dense layer reads the concatenation of every earlier feature map of its block", [1, 3, 224, 224])
    x = n.relu("features.relu0", n.bn("features.norm0", n.conv("features.conv0", "x", 3, 64, 7, 2, 3, bias=False), 64))
    x = n.maxpool("features.pool0", x, 3, 2, 1)
    c = 64
    for bi, count in enumerate([6, 12, 24, 16]):
        features = [x]
        for li in range(count):
            p = f"features.denseblock{bi + 1}.denselayer{li + 1}"
            cin = c + 32 * li
            inp = features[0] if len(features) == 1 else n.concat(f"{p}.concat", list(features))
            y = n.relu(f"{p}.relu1", n.bn(f"{p}.norm1", inp, cin))
            y = n.relu(f"{p}.relu2", n.bn(f"{p}.norm2", n.conv(f"{p}.conv1", y, cin, 128, 1, bias=False), 128))
            features.append(n.conv(f"{p}.conv2", y, 128, 32, 3, 1, 1, bias=False))
        x = n.concat(f"features.denseblock{bi + 1}.concat", list(features))
        c += 32 * count
        if bi < 3:
            p = f"features.transition{bi + 1}"
            x = n.relu(f"{p}.relu", n.bn(f"{p}.norm", x, c))
            x = n.avgpool(f"{p}.pool", n.conv(f"{p}.conv", x, c, c // 2, 1, bias=False), 2, 2)
            c //= 2
    x = n.relu("relu", n.bn("features.norm5", x, c))
    x = n.flatten("flatten", n.adaptive("avgpool", x, 1))
    n.linear("classifier", x, c, 1000)
    return n


def lecture_conv():
    n = Net("lecture-conv", "The lecture's example: ten 5x5 filters, stride 1, padding 2, on a 32x32x3 image: 32x32x10 out, "
            "10·(5·5·3 + 1) = 760 parameters", [1, 3, 32, 32])
    n.conv("conv", "x", 3, 10, 5, 1, 2)
    return n


NETWORKS = [
    lecture_conv, alexnet, alexnet_paper, zfnet, vgg16, googlenet,
    lambda: resnet("resnet18", "torchvision's ResNet-18: basic blocks 2-2-2-2, projection shortcuts (1x1 conv, BN) where the shape changes",
                   "basic", [2, 2, 2, 2]),
    lambda: resnet("resnet50", "torchvision's ResNet-50 (v1.5: stride on the 3x3 conv): bottlenecks 3-4-6-3", "bottleneck", [3, 4, 6, 3]),
    lambda: resnet("resnext50_32x4d", "torchvision's ResNeXt-50 32x4d: ResNet-50 with 3x3 convs grouped 32 ways, widths 128-256-512-1024",
                   "bottleneck", [3, 4, 6, 3], groups=32, width_per_group=4),
    densenet121,
]


# ---- The signature blocks, small (inputs of a few hundred elements, narrow channels), and one
# small whole network ending in softmax cross-entropy: the structures of the whole-network
# golden vectors (Vectors/networks/, filled with seeded values by the Swift catalogue) and of
# the engine check (Tools/engines/network_engines.py), not architectures.

def small(name, description, shape):
    return Net(name, description, shape)


def block_stem():
    n = small("stem", "AlexNet/ZFNet stem: large strided conv, ReLU, LRN (n 5, alpha 1e-4, beta 0.75, k 2), overlapping 3x3/2 max pool", [1, 3, 15, 15])
    n.maxpool("pool1", n.lrn("norm1", n.relu("relu1", n.conv("conv1", "x", 3, 8, 5, 2, 1))), 3, 2)
    return n


def block_vgg():
    n = small("vgg-block", "VGG block: two 3x3 convs (padding 1) with ReLU, then a 2x2/2 max pool", [1, 3, 8, 8])
    x = n.relu("relu1", n.conv("conv1", "x", 3, 4, 3, 1, 1))
    n.maxpool("pool", n.relu("relu2", n.conv("conv2", x, 4, 4, 3, 1, 1)), 2, 2)
    return n


def block_inception():
    n = small("inception", "Inception module (the paper's): 1x1, 1x1-3x3, 1x1-5x5 and 3x3/1 max pool-1x1 branches, ReLU, concatenated on channels", [1, 4, 6, 6])
    b1 = n.relu("b1.relu", n.conv("b1.conv", "x", 4, 2, 1))
    b2 = n.relu("b2.relu", n.conv("b2.conv", n.relu("b2.reduce.relu", n.conv("b2.reduce", "x", 4, 2, 1)), 2, 3, 3, 1, 1))
    b3 = n.relu("b3.relu", n.conv("b3.conv", n.relu("b3.reduce.relu", n.conv("b3.reduce", "x", 4, 1, 1)), 1, 2, 5, 1, 2))
    b4 = n.relu("b4.relu", n.conv("b4.proj", n.maxpool("b4.pool", "x", 3, 1, 1), 4, 2, 1))
    n.concat("concat", [b1, b2, b3, b4])
    return n


def block_basic():
    n = small("resnet-basic", "ResNet basic block, identity shortcut: conv-BN-ReLU-conv-BN, + x, ReLU (evaluation mode)", [1, 4, 6, 6])
    y = n.relu("relu1", n.bn("bn1", n.conv("conv1", "x", 4, 4, 3, 1, 1, bias=False), 4))
    y = n.bn("bn2", n.conv("conv2", y, 4, 4, 3, 1, 1, bias=False), 4)
    n.relu("relu_out", n.add("add", [y, "x"]))
    return n


def block_basic_training():
    # The same block in training mode: batch statistics (biased variance, as every engine
    # normalises), so a batch norm with the unbiased variance is told apart from the right one.
    n = small("resnet-basic-training", "ResNet basic block, identity shortcut: conv-BN-ReLU-conv-BN, + x, ReLU (training mode: batch statistics)", [2, 4, 6, 6])
    y = n.relu("relu1", n.bn("bn1", n.conv("conv1", "x", 4, 4, 3, 1, 1, bias=False), 4, training=True))
    y = n.bn("bn2", n.conv("conv2", y, 4, 4, 3, 1, 1, bias=False), 4, training=True)
    n.relu("relu_out", n.add("add", [y, "x"]))
    return n


def block_bottleneck():
    n = small("resnext-bottleneck", "ResNeXt bottleneck with projection shortcut: 1x1, grouped 3x3/2 (groups 2), 1x1, BN after each; 1x1/2 conv + BN shortcut", [1, 4, 6, 6])
    y = n.relu("relu1", n.bn("bn1", n.conv("conv1", "x", 4, 4, 1, bias=False), 4))
    y = n.relu("relu2", n.bn("bn2", n.conv("conv2", y, 4, 4, 3, 2, 1, groups=2, bias=False), 4))
    y = n.bn("bn3", n.conv("conv3", y, 4, 8, 1, bias=False), 8)
    s = n.bn("downsample.1", n.conv("downsample.0", "x", 4, 8, 1, 2, bias=False), 8)
    n.relu("relu_out", n.add("add", [y, s]))
    return n


def block_dense():
    n = small("dense-block", "DenseNet dense block of two layers (BN-ReLU-1x1 conv-BN-ReLU-3x3 conv, growth 2) and its transition (BN-ReLU-1x1 conv-2x2/2 average pool)", [1, 4, 6, 6])
    features = ["x"]
    for i in range(2):
        p = f"l{i + 1}"
        inp = features[0] if len(features) == 1 else n.concat(f"{p}.concat", list(features))
        cin = 4 + 2 * i
        y = n.relu(f"{p}.relu1", n.bn(f"{p}.norm1", inp, cin))
        y = n.relu(f"{p}.relu2", n.bn(f"{p}.norm2", n.conv(f"{p}.conv1", y, cin, 4, 1, bias=False), 4))
        features.append(n.conv(f"{p}.conv2", y, 4, 2, 3, 1, 1, bias=False))
    x = n.concat("concat", list(features))
    x = n.relu("t.relu", n.bn("t.norm", x, 8))
    n.avgpool("t.pool", n.conv("t.conv", x, 8, 4, 1, bias=False), 2, 2)
    return n


def block_basic_projection():
    n = small("resnet-basic-projection", "ResNet basic block, projection shortcut: conv/2-BN-ReLU-conv-BN, + (1x1/2 conv, BN)(x), ReLU (evaluation mode)", [1, 4, 6, 6])
    y = n.relu("relu1", n.bn("bn1", n.conv("conv1", "x", 4, 6, 3, 2, 1, bias=False), 6))
    y = n.bn("bn2", n.conv("conv2", y, 6, 6, 3, 1, 1, bias=False), 6)
    s = n.bn("downsample.1", n.conv("downsample.0", "x", 4, 6, 1, 2, bias=False), 6)
    n.relu("relu_out", n.add("add", [y, s]))
    return n


def block_resnet_bottleneck():
    n = small("resnet-bottleneck", "ResNet bottleneck, identity shortcut: 1x1 (8 to 2), 3x3, 1x1 (2 to 8), BN after each, + x, ReLU (evaluation mode)", [1, 8, 5, 5])
    y = n.relu("relu1", n.bn("bn1", n.conv("conv1", "x", 8, 2, 1, bias=False), 2))
    y = n.relu("relu2", n.bn("bn2", n.conv("conv2", y, 2, 2, 3, 1, 1, bias=False), 2))
    y = n.bn("bn3", n.conv("conv3", y, 2, 8, 1, bias=False), 8)
    n.relu("relu_out", n.add("add", [y, "x"]))
    return n


def small_resnet():
    n = small("small-resnet", "A whole small ResNet: 3x3 conv stem, BN, ReLU, 2x2/2 max pool, one basic block (identity), global average pool, "
              "flatten, linear to 3 classes, softmax cross-entropy (mean over the batch of 2)", [2, 3, 8, 8])
    x = n.maxpool("maxpool", n.relu("relu", n.bn("bn1", n.conv("conv1", "x", 3, 4, 3, 1, 1, bias=False), 4)), 2, 2)
    y = n.relu("layer1.0.relu1", n.bn("layer1.0.bn1", n.conv("layer1.0.conv1", x, 4, 4, 3, 1, 1, bias=False), 4))
    y = n.bn("layer1.0.bn2", n.conv("layer1.0.conv2", y, 4, 4, 3, 1, 1, bias=False), 4)
    x = n.relu("layer1.0.relu_out", n.add("layer1.0.add", [y, x]))
    x = n.flatten("flatten", n.adaptive("avgpool", x, 1))
    n.loss("loss", n.linear("fc", x, 4, 3), [2, 0])
    return n


BLOCKS = [block_stem, block_vgg, block_inception, block_basic, block_basic_training, block_basic_projection, block_resnet_bottleneck, block_bottleneck,
          block_dense, small_resnet]


def write(directory, networks=NETWORKS):
    os.makedirs(directory, exist_ok=True)
    for make in networks:
        net = make()
        d = net.json()
        # One node per line: readable, and diffs show which node changed.
        head = {k: v for k, v in d.items() if k != "nodes"}
        text = json.dumps(head, ensure_ascii=False)[:-1] + ', "nodes": [\n'
        text += ",\n".join("  " + json.dumps(node, ensure_ascii=False) for node in d["nodes"]) + "\n]}\n"
        with open(os.path.join(directory, net.name + ".json"), "w", encoding="utf-8") as f:
            f.write(text)


if __name__ == "__main__":
    # cnnref_networks.py [DIR [BLOCKS_DIR]]
    write(sys.argv[1] if len(sys.argv) > 1 else "Sources/GoldenVectors/Networks")
    write(sys.argv[2] if len(sys.argv) > 2 else "Sources/GoldenVectors/Networks/blocks", BLOCKS)
