"""A plain single-device training script: a small classifier on synthetic data.

Convert it with `accel-convert examples/train.py`, then run it on one or two processes.
"""

import argparse

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset


class Net(nn.Module):
    def __init__(self, features=20, hidden=64, classes=4):
        super().__init__()
        self.fc1 = nn.Linear(features, hidden)
        self.fc2 = nn.Linear(hidden, classes)

    def forward(self, x):
        return self.fc2(F.relu(self.fc1(x)))


def make_data(n, generator):
    x = torch.randn(n, 20, generator=generator)
    y = (x[:, :4].argmax(dim=1)).long()
    return TensorDataset(x, y)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lr", type=float, default=0.05)
    args = parser.parse_args()

    torch.manual_seed(0)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    g = torch.Generator().manual_seed(1)
    train_loader = DataLoader(make_data(512, g), batch_size=32, shuffle=True)
    test_loader = DataLoader(make_data(200, g), batch_size=50)

    model = Net().to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)

    for epoch in range(args.epochs):
        model.train()
        for data, target in train_loader:
            data, target = data.to(device), target.to(device)
            optimizer.zero_grad()
            loss = F.cross_entropy(model(data), target)
            loss.backward()
            optimizer.step()

        model.eval()
        correct = 0
        with torch.no_grad():
            for data, target in test_loader:
                data, target = data.to(device), target.to(device)
                correct += (model(data).argmax(dim=1) == target).sum().item()
        print(f"epoch {epoch}: last loss {loss.item():.4f}, test accuracy {correct / len(test_loader.dataset):.3f}")


if __name__ == "__main__":
    main()
