// hgq-rtl fast harness: stream packed vectors through a Verilated design.
//
// Template rendered by hgq_rtl_sim.fast_build into the build folder (the @NAME@ fields come from
// the design's manifest) and compiled with `verilator --cc --exe --prefix Vdut` and make.
//
// A parallel design (HGQ_STREAM 0) gets one vector per clock. Input (stdin, or --in FILE):
// IN_WORDS little-endian 32-bit words per vector, each input port's words in turn (port bits
// [32 w, 32 w + 32) in its word w). Every vector is driven with the valid input high on
// consecutive cycles (no bubbles, II = 1); at the end of the input the valid input goes low and
// the pipeline runs --drain more cycles. Output (stdout, or --out FILE): one record on every
// cycle the valid output is high: the cycle number as two 32-bit words (low, high), then
// OUT_WORDS words of the output port. Cycle 0 is the first cycle after reset, on which vector 0
// is driven, so vector k's output must come on cycle k + latency; the caller checks that and
// every output value.
//
// A stream design (HGQ_STREAM 1) gets beats: IN_WORDS words per beat, offered back to back
// (tvalid high whenever a beat is waiting; tlast on every BEATS_IN-th beat). The output's tready
// is high, or low on a cycle with probability --backpressure (a seeded xorshift generator,
// --seed). Output: one record per output beat taken: the cycle (two words), tlast (one word),
// then OUT_WORDS words of data. Once the input ends the harness runs until tvalid has been low
// for --drain cycles in a row; when no beat moves either way for --stall cycles the design is
// stuck and the harness stops early ("stalled": true in the result).
//
// Timing, as in the cocotb bench (hgq_rtl_sim.bench): each cycle the inputs change at the falling
// edge, the design settles, the outputs are sampled, then the rising edge.
//
// On success the last line on stderr is `HGQ_FAST_RESULT {json}` and the exit status is 0.
// Bad usage, I/O errors or input that ends inside a vector: a message and status 2.

#define HGQ_STREAM @STREAM@

#include "Vdut.h"
#include "verilated.h"

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <type_traits>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

static constexpr int IN_WORDS = @IN_WORDS@;  // all input ports' words
static constexpr int OUT_WIDTH = @OUT_WIDTH@;
static constexpr int OUT_WORDS = (OUT_WIDTH + 31) / 32;
static constexpr int RECORD_WORDS = 2 + HGQ_STREAM + OUT_WORDS;
static constexpr std::size_t BLOCK_VECTORS = 1 << 14;

// ---------------------------------------------------------------- port access
// Verilator holds a port of <= 8, 16, 32 or 64 bits in CData, SData, IData or QData, and a wider
// one in VlWide<words>. The static checks turn a manifest that disagrees with the Verilog into a
// build error.

template <int WIDTH, typename T>
static constexpr bool holds_width() {
    return sizeof(T) == (WIDTH <= 8 ? 1u : WIDTH <= 16 ? 2u : WIDTH <= 32 ? 4u : 8u);
}

template <int WIDTH, std::size_t N>
static inline void put_port(VlWide<N>& port, const uint32_t* words) {
    static_assert(N == (WIDTH + 31) / 32, "the input port's width differs from the manifest");
    std::memcpy(port.data(), words, sizeof(uint32_t) * N);
}

template <int WIDTH, typename T>
static inline void put_port(T& port, const uint32_t* words) {
    static_assert(std::is_integral<T>::value && holds_width<WIDTH, T>(),
                  "the input port's width differs from the manifest");
    if constexpr (WIDTH <= 32) {
        port = static_cast<T>(words[0]);
    } else {
        port = static_cast<T>(words[0] | (static_cast<uint64_t>(words[1]) << 32));
    }
}

template <int WIDTH, std::size_t N>
static inline void get_port(const VlWide<N>& port, uint32_t* words) {
    static_assert(N == (WIDTH + 31) / 32, "the output port's width differs from the manifest");
    std::memcpy(words, port.data(), sizeof(uint32_t) * N);
}

template <int WIDTH, typename T>
static inline void get_port(const T& port, uint32_t* words) {
    static_assert(std::is_integral<T>::value && holds_width<WIDTH, T>(),
                  "the output port's width differs from the manifest");
    const uint64_t value = static_cast<uint64_t>(port);
    words[0] = static_cast<uint32_t>(value);
    if constexpr (WIDTH > 32) words[1] = static_cast<uint32_t>(value >> 32);
}

// ---------------------------------------------------------------- I/O

[[noreturn]] static void fail(const char* what) {
    std::fprintf(stderr, "hgq-rtl fast harness: %s: %s\n", what, std::strerror(errno));
    std::exit(2);
}

static void write_all(int fd, const void* data, std::size_t bytes) {
    const char* p = static_cast<const char*>(data);
    while (bytes) {
        const ssize_t n = ::write(fd, p, bytes);
        if (n < 0) {
            if (errno == EINTR) continue;
            fail("cannot write the outputs");
        }
        p += n;
        bytes -= static_cast<std::size_t>(n);
    }
}

// One read: whatever the file or pipe holds (0 at the end of the input). The caller keeps a
// partial vector for the next read, so a writer on a pipe never has to send a whole block.
static std::size_t read_some(int fd, void* data, std::size_t bytes) {
    while (true) {
        const ssize_t n = ::read(fd, data, bytes);
        if (n >= 0) return static_cast<std::size_t>(n);
        if (errno != EINTR) fail("cannot read the inputs");
    }
}

// ---------------------------------------------------------------- main

// Every input port from one vector's (or beat's) words: generated from the manifest.
static inline void put_inputs(Vdut* top, const uint32_t* words) {
@PUT_INPUTS@
}

int main(int argc, char** argv) {
    const char* in_path = "-";
    const char* out_path = "-";
    long long reset_cycles = 4;
    long long drain_cycles = -1;
    long long stall_cycles = 1 << 20;
    double backpressure = 0.0;
    unsigned long long seed = 0;
    bool usage = false;
    for (int i = 1; i < argc; ++i) {
        const bool has_value = i + 1 < argc;
        if (!std::strcmp(argv[i], "--in") && has_value) {
            in_path = argv[++i];
        } else if (!std::strcmp(argv[i], "--out") && has_value) {
            out_path = argv[++i];
        } else if (!std::strcmp(argv[i], "--reset-cycles") && has_value) {
            reset_cycles = std::atoll(argv[++i]);
        } else if (!std::strcmp(argv[i], "--drain") && has_value) {
            drain_cycles = std::atoll(argv[++i]);
        } else if (!std::strcmp(argv[i], "--stall") && has_value) {
            stall_cycles = std::atoll(argv[++i]);
        } else if (!std::strcmp(argv[i], "--backpressure") && has_value) {
            backpressure = std::atof(argv[++i]);
        } else if (!std::strcmp(argv[i], "--seed") && has_value) {
            seed = std::strtoull(argv[++i], nullptr, 10);
        } else {
            usage = true;
            break;
        }
    }
    if (usage || drain_cycles < 0 || reset_cycles < 1 || stall_cycles < 1 || !(backpressure >= 0.0) ||
        !(backpressure < 1.0)) {
        std::fprintf(stderr,
                     "usage: %s --drain CYCLES [--in FILE|-] [--out FILE|-] [--reset-cycles N]\n"
                     "          [--stall CYCLES] [--backpressure P] [--seed S]\n"
                     "  CYCLES >= 0 (the latency and a margin), N >= 1, 0 <= P < 1\n",
                     argv[0]);
        return 2;
    }
    const int in_fd = std::strcmp(in_path, "-") ? ::open(in_path, O_RDONLY) : 0;
    if (in_fd < 0) fail(in_path);
    const int out_fd =
        std::strcmp(out_path, "-") ? ::open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644) : 1;
    if (out_fd < 0) fail(out_path);

    const std::unique_ptr<VerilatedContext> context{new VerilatedContext};
    const std::unique_ptr<Vdut> top{new Vdut{context.get(), "dut"}};

    const std::vector<uint32_t> zeros(IN_WORDS, 0u);
    top->@CLOCK@ = 0;
    top->@RESET@ = 1;
    top->@VALID_IN@ = 0;
#if HGQ_STREAM
    top->@LAST_IN@ = 0;
    top->@READY_OUT@ = 0;
#endif
    put_inputs(top.get(), zeros.data());
    for (long long c = 0; c < reset_cycles; ++c) {
        top->@CLOCK@ = 0;
        top->eval();
        top->@CLOCK@ = 1;
        top->eval();
    }
    top->@RESET@ = 0;

    std::vector<uint32_t> in_buffer(BLOCK_VECTORS * IN_WORDS);
    std::vector<uint32_t> out_buffer(BLOCK_VECTORS * RECORD_WORDS);
    std::size_t out_fill = 0;  // records waiting in out_buffer
    uint64_t cycle = 0;        // parallel: vector k is driven on cycle k
    uint64_t n_in = 0;         // vectors (stream: beats) taken
    uint64_t n_out = 0;        // records written
    bool stalled = false;      // stream: nothing moved for --stall cycles

    auto flush = [&]() {
        write_all(out_fd, out_buffer.data(), out_fill * RECORD_WORDS * sizeof(uint32_t));
        out_fill = 0;
    };
    // One output record at the current cycle, if the output is valid (and taken).
    auto record = [&]() {
        uint32_t* where = &out_buffer[out_fill * RECORD_WORDS];
        where[0] = static_cast<uint32_t>(cycle);
        where[1] = static_cast<uint32_t>(cycle >> 32);
#if HGQ_STREAM
        where[2] = top->@LAST_OUT@ ? 1u : 0u;
#endif
        get_port<OUT_WIDTH>(top->@DATA_OUT@, where + 2 + HGQ_STREAM);
        ++n_out;
        if (++out_fill == BLOCK_VECTORS) flush();
    };

#if HGQ_STREAM
    static constexpr uint64_t BEATS_IN = @BEATS_IN@;
    static constexpr uint64_t BEATS_OUT = @BEATS_OUT@;
    uint64_t state = 0x9E3779B97F4A7C15ull ^ (seed * 0xBF58476D1CE4E5B9ull);
    if (state == 0) state = 1;
    const uint64_t threshold = static_cast<uint64_t>(backpressure * 4294967296.0);
    uint64_t first_input_cycle = ~0ull;
    long long idle = 0;   // cycles since a beat moved either way
    long long quiet = 0;  // cycles in a row with the output's tvalid low
    // One cycle offering *beat* (nullptr: none); returns whether the design took it.
    auto step = [&](const uint32_t* beat) -> bool {
        top->@CLOCK@ = 0;
        top->@VALID_IN@ = beat != nullptr;
        if (beat) {
            put_inputs(top.get(), beat);
            top->@LAST_IN@ = n_in % BEATS_IN == BEATS_IN - 1;
        }
        bool ready = true;
        if (threshold) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ready = (state >> 32) >= threshold;
        }
        top->@READY_OUT@ = ready;
        top->eval();
        const bool taken = beat && top->@READY_IN@;
        if (taken) {
            if (n_in == 0) first_input_cycle = cycle;
            ++n_in;
        }
        const bool valid = top->@VALID_OUT@;
        if (valid && ready) record();
        idle = taken || (valid && ready) ? 0 : idle + 1;
        quiet = valid ? 0 : quiet + 1;
        top->@CLOCK@ = 1;
        top->eval();
        ++cycle;
        return taken;
    };
#else
    auto step = [&](const uint32_t* words, bool valid) {
        top->@CLOCK@ = 0;
        put_inputs(top.get(), words);
        top->@VALID_IN@ = valid;
        top->eval();
        if (top->@VALID_OUT@) record();
        top->@CLOCK@ = 1;
        top->eval();
        ++cycle;
    };
#endif

    const std::size_t vector_bytes = sizeof(uint32_t) * IN_WORDS;
    const std::size_t buffer_bytes = in_buffer.size() * sizeof(uint32_t);
    char* const in_bytes = reinterpret_cast<char*>(in_buffer.data());
    std::size_t pending = 0;  // bytes in in_buffer not yet driven (a partial vector)
    while (true) {
        const std::size_t got = read_some(in_fd, in_bytes + pending, buffer_bytes - pending);
        if (got == 0) break;
        pending += got;
        const std::size_t whole = pending / vector_bytes;
#if HGQ_STREAM
        std::size_t v = 0;
        while (v < whole && !stalled) {
            v += step(&in_buffer[v * IN_WORDS]);
            stalled = idle >= stall_cycles;
        }
        if (stalled) break;
#else
        for (std::size_t v = 0; v < whole; ++v) step(&in_buffer[v * IN_WORDS], true);
        n_in += whole;
#endif
        pending -= whole * vector_bytes;
        if (pending) std::memmove(in_bytes, in_bytes + whole * vector_bytes, pending);
        if (out_fill) flush();  // a reader on a pipe sees the outputs of what it sent so far
    }
    if (pending && !stalled) {
        std::fprintf(stderr, "hgq-rtl fast harness: the input ends inside a vector (%zu bytes)\n",
                     pending);
        return 2;
    }
#if HGQ_STREAM
    if (!stalled && n_in % BEATS_IN) {
        std::fprintf(stderr, "hgq-rtl fast harness: the input ends inside a sample (beat %llu)\n",
                     static_cast<unsigned long long>(n_in));
        return 2;
    }
    // Run until the output has been quiet for --drain cycles; a design that never stops
    // putting out beats is cut off a little after the beats expected.
    const uint64_t enough = n_in / BEATS_IN * BEATS_OUT + BEATS_OUT + 16;
    quiet = 0;
    while (!stalled && quiet < drain_cycles && n_out < enough) {
        step(nullptr);
        stalled = idle >= stall_cycles + drain_cycles;
    }
    if (out_fill) flush();
    if (out_fd != 1 && ::close(out_fd) != 0) fail(out_path);
    top->final();
    std::fprintf(stderr,
                 "HGQ_FAST_RESULT {\"vectors\": %llu, \"beats\": %llu, \"outputs\": %llu, "
                 "\"cycles\": %llu, \"first_input_cycle\": %lld, \"stalled\": %s}\n",
                 static_cast<unsigned long long>(n_in / BEATS_IN),
                 static_cast<unsigned long long>(n_in), static_cast<unsigned long long>(n_out),
                 static_cast<unsigned long long>(cycle),
                 n_in ? static_cast<long long>(first_input_cycle) : -1LL,
                 stalled ? "true" : "false");
#else
    for (long long c = 0; c < drain_cycles; ++c) step(zeros.data(), false);
    if (out_fill) flush();
    if (out_fd != 1 && ::close(out_fd) != 0) fail(out_path);
    top->final();
    std::fprintf(stderr, "HGQ_FAST_RESULT {\"vectors\": %llu, \"outputs\": %llu, \"cycles\": %llu}\n",
                 static_cast<unsigned long long>(n_in), static_cast<unsigned long long>(n_out),
                 static_cast<unsigned long long>(cycle));
#endif
    return 0;
}
