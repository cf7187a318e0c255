/** One sweep-churn case: which tree's build, how many idle WS viewers, how many 100 ms sweeps. */
export interface SweepCase {
  tree: string;
  root: string;
  viewers: number;
  sweeps: number;
  run: number;
}

export interface SweepResult extends SweepCase {
  /** Whole 100 ms sweeps in the measured window. */
  sweepsRun: number;
  /** Heap growth over the window, with no GC in it (see gcsInWindow). */
  heapDeltaBytes: number;
  /** GCs that ran in the window: any makes heapDeltaBytes a lower bound, and is reported. */
  gcsInWindow: number;
}
