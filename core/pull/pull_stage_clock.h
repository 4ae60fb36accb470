// Per-stage wall time of a pull (fastpull::PullStageTimes): one clock per rebuild thread, charged
// by scopes that say which stage runs now, so each second lands in exactly one stage (a hash
// inside a decode callback is charged to hashing, and the decode resumes afterwards). Rests on
// std::chrono::steady_clock only; the cost is two clock reads per scope (per chunk, not per byte).
#pragma once

#include <chrono>

#include "strata/store_pull.h"

namespace strata::fastpull::detail {

class StageClock {
 public:
  using Stage = double PullStageTimes::*;

  explicit StageClock(PullStageTimes& times)
      : times_(times), last_(std::chrono::steady_clock::now()) {}
  StageClock(const StageClock&) = delete;
  StageClock& operator=(const StageClock&) = delete;

  // Charges the time since the last switch to the running stage, then runs `stage` until the
  // scope ends (the stage that ran before resumes then).
  class Scope {
   public:
    Scope(StageClock& clock, Stage stage) : clock_(clock), previous_(clock.current_) {
      clock_.charge();
      clock_.current_ = stage;
    }
    ~Scope() {
      clock_.charge();
      clock_.current_ = previous_;
    }
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    StageClock& clock_;
    Stage previous_;
  };

  [[nodiscard]] Scope enter(Stage stage) { return Scope(*this, stage); }

 private:
  void charge() {
    const auto now = std::chrono::steady_clock::now();
    if (current_ != nullptr) times_.*current_ += std::chrono::duration<double>(now - last_).count();
    last_ = now;
  }

  PullStageTimes& times_;
  Stage current_ = nullptr;  // nothing charged outside a scope
  std::chrono::steady_clock::time_point last_;
};

}  // namespace strata::fastpull::detail
