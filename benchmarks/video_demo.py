"""The video demo model on held-out clips: how often it answers right, and whether EAGLE's "which frames matter"
finds the frames that show the asked object (the ground truth every demo clip carries).

    python benchmarks/video_demo.py [--clips 40] [--explained 12]

Accuracy: presence ("is there a <shape> ?", balanced yes/no), colour ("what color is the <shape> ?") and the
exact caption ("describe the video ."). Frames: for "yes" answers about an object shown in only some frames, the
share of the gain on the frames that show it (chance: the share of frames that show it), a 3x3 grid per frame,
efficient search.
"""

from __future__ import annotations

import argparse

import numpy as np
from eagle_widgets.demo import VIDEO_CAPTION_PROMPT, load_video_demo_session, make_clip
from eagle_widgets.demo.scenes import SHAPES, colour_prompt, presence_prompt

HELD_OUT = 5_000_000  # clip seeds far from the training stream's


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clips", type=int, default=40)
    parser.add_argument("--explained", type=int, default=12)
    args = parser.parse_args(argv)
    session = load_video_demo_session(cache=False)
    rng = np.random.default_rng(0)
    right = {"presence": [], "colour": [], "caption": []}
    on_frames, chance, top_hits = [], [], []
    for k in range(args.clips):
        clip = make_clip(HELD_OUT + k)
        video = clip.video()
        present = [o.shape for o in clip.present]
        asked = present[int(rng.integers(len(present)))] if k % 2 == 0 else \
            str(rng.choice([s for s in SHAPES if s not in present]))
        for kind, prompt in (("presence", presence_prompt(asked)), ("caption", VIDEO_CAPTION_PROMPT),
                             ("colour", colour_prompt(present[0]))):
            gen = session.generate_video(video, prompt, max_new_tokens=12)
            right[kind].append(gen.text.strip() == clip.answer(prompt).strip())
            shown = clip.frames_with(asked)
            if (kind == "presence" and gen.tokens[0].strip() == "yes" and 0 < len(shown) < video.n
                    and len(on_frames) < args.explained):
                result = session.explain(gen, [0], (3, 3), mode="efficient")
                shares = result.frame_shares()
                on_frames.append(float(shares[shown].sum()))
                chance.append(len(shown) / video.n)
                top_hits.append(int(np.argmax(shares)) in shown)
    print(f"\nvideo demo model, {args.clips} held-out clips of {make_clip(0).frames.shape[0]} frames\n")
    print("| question | accuracy |")
    print("|---|---:|")
    for kind, hits in right.items():
        print(f"| {kind} | {np.mean(hits):.0%} ({sum(hits)}/{len(hits)}) |")
    if on_frames:
        print(f"\n'yes' about an object shown in some frames ({len(on_frames)} explained, 3x3 grid per frame, "
              f"efficient): share of the gain on the frames that show it {np.mean(on_frames):.0%} "
              f"(chance {np.mean(chance):.0%}); top frame shows it in "
              f"{np.mean(top_hits):.0%} of them")
    return {"accuracy": {k: float(np.mean(v)) for k, v in right.items()}, "on_frames": on_frames, "chance": chance}


if __name__ == "__main__":
    main()
