"""Pilot harness of the oracle text GAN (issue 21): MLE, then adversarial variants, in plain PyTorch.

Not part of the package and not what `make train` runs: a copy of TextGAN's steps (the same networks,
loss and optimizers, no Lightning) to try recipes quickly; docs/text.md ("What was tried") lists the
pilots it ran. Prints one JSON line per evaluation: {temperature: [NLL-oracle, NLL-test]}, NLL-oracle of
1,000 samples and NLL-test of the 1,000 validation sequences, and the process's CPU seconds so far.

  OMP_NUM_THREADS=1 python scripts/text_gan_pilot.py mle --steps 1000 --eval_every 250 \
      --taus 0.7 0.8 0.9 1.0 1.2 --out /tmp/tp/mle.pt                # writes /tmp/tp/mle_<step>.pt too
  OMP_NUM_THREADS=1 python scripts/text_gan_pilot.py gan --init /tmp/tp/mle_1000.pt --iters 100 \
      --n_critic 5 --schedule const --beta_max 1 --eval_every 50     # pilot P1
"""

import argparse
import json
import time

import torch
import torch.nn.functional as F

from datamodules.text.oracle import OracleDataModule
from sagan.layers.causal import KVCache
from sagan.losses import RelativisticLoss
from sagan.models.text_transformer import TextTransformerDiscriminator, TextTransformerGenerator, gumbel_noise


def cpu():
    t = time.process_time()
    return t


@torch.no_grad()
def sample_tokens(g, n, tau=1.0, seed=0):
    rng = torch.Generator().manual_seed(seed)
    out = []
    for s in range(0, n, 250):
        m = min(250, n - s)
        gum = gumbel_noise((m, g.seq_len, g.vocab_size), torch.device("cpu"), rng)
        cache, x, toks = KVCache(), (g.start + g.pos[0]).expand(m, 1, -1), []
        for t in range(g.seq_len):
            logits = g._logits(x, cache)[:, -1] / tau
            tok = (logits + gum[:, t]).argmax(-1)
            toks.append(tok)
            if t + 1 < g.seq_len:
                x = (g.embed(tok) + g.pos[t + 1]).unsqueeze(1)
        out.append(torch.stack(toks, 1))
    return torch.cat(out)


@torch.no_grad()
def evaluate(g, oracle, held, taus=(1.0,), n=1000):
    g.eval()
    res = {}
    for tau in taus:
        toks = sample_tokens(g, n, tau)
        nll_oracle = oracle.nll(toks).mean().item()
        logits = g(held) / tau
        nll_test = F.cross_entropy(logits.flatten(0, 1), held.flatten()).item()
        res[tau] = (round(nll_oracle, 3), round(nll_test, 3))
    g.train()
    return res


def data():
    dm = OracleDataModule()
    train, valid, test = dm._splits()
    return dm.oracle, train, valid


def mle(args):
    torch.manual_seed(0)
    oracle, train, valid = data()
    g = TextTransformerGenerator(5000, 20, args.dim, args.depth, 4, dropout=args.dropout)
    opt = torch.optim.Adam(g.parameters(), lr=args.lr)
    rng = torch.Generator().manual_seed(0)
    t0, step = cpu(), 0
    while step < args.steps:
        perm = torch.randperm(len(train), generator=rng)
        for i in range(0, len(train) - 63, 64):
            batch = train[perm[i : i + 64]]
            loss = F.cross_entropy(g(batch).flatten(0, 1), batch.flatten())
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(g.parameters(), 5.0)
            opt.step()
            step += 1
            if step % args.eval_every == 0 or step == args.steps:
                print(json.dumps({"step": step, "cpu": round(cpu() - t0), "eval": evaluate(g, oracle, valid, args.taus)}), flush=True)
                torch.save(g.state_dict(), args.out.replace(".pt", f"_{step}.pt"))
            if step >= args.steps:
                break
    torch.save(g.state_dict(), args.out)


def gan(args):
    torch.manual_seed(args.seed)
    oracle, train, valid = data()
    g = TextTransformerGenerator(5000, 20, args.dim, args.depth, 4)
    g.load_state_dict(torch.load(args.init))
    if args.d == "transformer":
        d = TextTransformerDiscriminator(5000, 20, args.d_dim, args.d_depth, 4)
    else:
        from sagan.models.text_relgan_discriminator import RelGANDiscriminator
        d = RelGANDiscriminator(5000, 20, args.d_dim, num_representations=args.num_rep, num_filters=args.num_filters)
    loss = RelativisticLoss()
    opt_g = torch.optim.Adam(g.parameters(), lr=args.lr_g, betas=(0.9, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), lr=args.lr_d, betas=(0.9, 0.999))
    rng = torch.Generator().manual_seed(1)
    t0 = cpu()
    print(json.dumps({"iter": 0, "cpu": 0, "eval": evaluate(g, oracle, valid, args.taus)}), flush=True)
    n = args.batch
    for it in range(1, args.iters + 1):
        progress = min(it / args.beta_steps, 1.0)
        beta = args.beta_max**progress if args.schedule == "exp" else args.beta_max
        temp = 1.0 / beta
        for _ in range(args.n_critic):
            real = train[torch.randint(0, len(train), (n,), generator=rng)]
            with torch.no_grad():
                _, fake = g.sample(n, temp)
            dr, df = d(real), d(fake)
            d_loss = loss.discriminator(dr, df)
            if args.gp > 0:
                onehot = F.one_hot(real, 5000).float()
                a = torch.rand(n, 1, 1)
                x = (a * onehot + (1 - a) * fake).requires_grad_(True)
                (gr,) = torch.autograd.grad(d(x).sum(), x, create_graph=True)
                d_loss = d_loss + args.gp * (gr.flatten(1).norm(dim=1) - 1).square().mean()
            opt_d.zero_grad()
            d_loss.backward()
            torch.nn.utils.clip_grad_norm_(d.parameters(), 5.0)
            opt_d.step()
        real = train[torch.randint(0, len(train), (n,), generator=rng)]
        _, fake = g.sample(n, temp)
        g_loss = loss.generator(d(fake), d(real).detach())
        if args.mle_mix > 0:
            g_loss = g_loss + args.mle_mix * F.cross_entropy(g(real).flatten(0, 1), real.flatten())
        opt_g.zero_grad()
        g_loss.backward()
        torch.nn.utils.clip_grad_norm_(g.parameters(), 5.0)
        opt_g.step()
        if it % args.eval_every == 0 or it == args.iters:
            print(json.dumps({"iter": it, "cpu": round(cpu() - t0), "beta": round(beta, 2), "d": round(d_loss.item(), 3),
                              "g": round(g_loss.item(), 3), "eval": evaluate(g, oracle, valid, args.taus)}), flush=True)
    if args.out:
        torch.save(g.state_dict(), args.out)


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("mode")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--iters", type=int, default=400)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--depth", type=int, default=2)
    p.add_argument("--d", default="transformer")
    p.add_argument("--d_dim", type=int, default=64)
    p.add_argument("--d_depth", type=int, default=2)
    p.add_argument("--num_rep", type=int, default=16)
    p.add_argument("--num_filters", type=int, default=64)
    p.add_argument("--lr_g", type=float, default=1e-4)
    p.add_argument("--lr_d", type=float, default=1e-4)
    p.add_argument("--n_critic", type=int, default=5)
    p.add_argument("--beta_max", type=float, default=100.0)
    p.add_argument("--beta_steps", type=int, default=400)
    p.add_argument("--schedule", default="exp")
    p.add_argument("--gp", type=float, default=0.0)
    p.add_argument("--mle_mix", type=float, default=0.0)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval_every", type=int, default=50)
    p.add_argument("--taus", type=float, nargs="+", default=[1.0])
    p.add_argument("--init")
    p.add_argument("--out")
    a = p.parse_args()
    mle(a) if a.mode == "mle" else gan(a)
