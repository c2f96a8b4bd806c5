"""Train-step time of the reference DCN V2 with each loss, relative to BCE (issue: loss family, item 8).

    python -m benchmarks.loss_step_time [--batch-sizes 4096,10000] [--rounds 5] [--steps 3]

For each batch size every loss trains the same model shape (BARS DCNv2_criteo_x1: parallel,
3 cross layers, DNN 500-500-500, 39 fields × 10, Adam + clipnorm, fp32) on an in-memory batch with
25 % positives; steps are timed round-robin in one process; each loss's ratio to BCE is the median over rounds
of the per-round ratio. Two
textbook Combined-Pair formulations run beside ours for comparison:
- `pair[dense BxB]`: softplus over the whole B×B difference matrix, masked to positive × negative;
- `pair[gather autodiff]`: gather positives and negatives, softplus over N+×N-, autodiff gradient.
`combined_pair` is the library's: the N+×N- pass with its hand-written gradient.
"""
import sys

import tensorflow as tf

from benchmarks import common, results
from settings import flags
from settings.configs import ModelConfig
from trainer import losses, model as model_lib
from trainer.training_model import TrainingModel


class DenseMaskedPair(losses.CombinedPair):
    """RankNet over the full B×B matrix with a positive × negative mask (autodiff)."""

    def ranking_term(self, labels, y_pred, sample_weight):
        z = tf.reshape(y_pred, [-1])
        positive = labels > 0.5
        mask = tf.cast(positive[:, None] & ~positive[None, :], tf.float32)
        pairs = tf.reduce_sum(mask)
        return tf.reduce_sum(mask * tf.nn.softplus(z[None, :] - z[:, None])) / tf.maximum(pairs, 1.0)


class GatheredAutodiffPair(losses.CombinedPair):
    """RankNet over the gathered N+×N- matrix (autodiff)."""

    def ranking_term(self, labels, y_pred, sample_weight):
        z = tf.reshape(y_pred, [-1])
        z_pos, z_neg = tf.boolean_mask(z, labels > 0.5), tf.boolean_mask(z, labels <= 0.5)
        pairs = tf.cast(tf.size(z_pos) * tf.size(z_neg), tf.float32)
        return tf.reduce_sum(tf.nn.softplus(z_neg[None, :] - z_pos[:, None])) / tf.maximum(pairs, 1.0)


def variants(selected):
    table = {name: (lambda cls=cls: cls()) for name, cls in losses.LOSSES.items()}
    table["pair[dense BxB]"] = DenseMaskedPair
    table["pair[gather autodiff]"] = GatheredAutodiffPair
    unknown = set(selected) - set(table)
    if unknown:
        sys.exit(f"unknown loss(es) {sorted(unknown)}; valid: {', '.join(table)}")
    return {name: table[name] for name in selected}


def main() -> None:
    parser = flags.StrictParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-sizes", default="4096,10000")
    parser.add_argument("--losses", default=",".join(["bce", "combined_pair", "pair[dense BxB]",
                                                        "pair[gather autodiff]"] +
                                                       [n for n in losses.LOSSES if n not in ("bce", "combined_pair")]))
    parser.add_argument("--rounds", type=int, default=9, help="timed blocks per loss (median taken)")
    parser.add_argument("--steps", type=int, default=4, help="train steps per timed block")
    parser.add_argument("--rows-per-field", type=int, default=common.DEFAULT_ROWS_PER_FIELD)
    args = parser.parse_args()
    chosen = variants(args.losses.split(","))
    if "bce" not in chosen:
        sys.exit("--losses must include bce, the baseline")
    vocab = common.vocabulary_sizes(args.rows_per_field)
    run = results.Run("loss_step_time")
    print(common.machine_line())
    print(f"model: reference DCN V2, fp32, {args.rows_per_field} rows × 26 tables; "
          f"{args.rounds} rounds × {args.steps} steps, medians; every loss trains the same variables")
    for batch_size in (int(b) for b in args.batch_sizes.split(",")):
        batch = common.synthetic_batch(batch_size, vocab)
        # Every loss trains the same DCN V2 variables with the same Adam: memory placement of the
        # 22M-parameter tables then cannot make one variant look faster than another.
        tf.keras.utils.set_random_seed(0)
        ctr_model = model_lib.DCNV2(vocab, ModelConfig())
        optimizers = {}
        steps = {}
        for name, make_loss in chosen.items():
            loss = make_loss()
            model = TrainingModel(ctr_model, loss.INPUT)
            optimizer = optimizers.setdefault(loss.INPUT, tf.keras.optimizers.Adam(1e-3, clipnorm=10.0))
            model.compile(optimizer=optimizer, loss=loss)
            steps[name] = common.step_function(model, batch)
        samples = common.time_side_by_side(steps, args.steps, args.rounds)
        seconds, ratios = common.medians(samples), common.paired_ratios(samples, "bce")
        positives = int(tf.reduce_sum(batch[1]).numpy())
        print(f"\nbatch {batch_size} ({positives} positives, {positives * (batch_size - positives):,} pairs)")
        print(f"  {'loss':24} {'ms/step':>9} {'examples/s':>11} {'× BCE':>7} {'(min-max over rounds)':>22}")
        rows = []
        for name, value in seconds.items():
            per_round = [v / b for v, b in zip(samples[name], samples["bce"])]
            print(f"  {name:24} {value * 1e3:9.1f} {batch_size / value:11,.0f} {ratios[name]:7.3f} "
                  f"{min(per_round):10.3f}-{max(per_round):.3f}")
            rows.append([name, value * 1e3, batch_size / value, ratios[name],
                         f"{min(per_round):.3f}-{max(per_round):.3f}"])
        run.table(f"batch {batch_size} ({positives} positives, {positives * (batch_size - positives):,} pairs)",
                  ["loss", "ms/step", "examples/s", "× BCE (paired median)", "× BCE min-max over rounds"], rows)
    run.save()


if __name__ == "__main__":
    main()
