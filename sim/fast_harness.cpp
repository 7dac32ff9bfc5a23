// hgq-rtl fast harness: stream packed vectors through a Verilated design, one per clock.
//
// Template rendered by hgq_rtl_sim.fast into the build folder (the @NAME@ fields come from the
// design's manifest) and compiled with `verilator --cc --exe --prefix Vdut` and make.
//
// Input (stdin, or --in FILE): IN_WORDS little-endian 32-bit words per vector, port bits
// [32 w, 32 w + 32) in word w. Every vector is driven with the valid input high on consecutive
// cycles (no bubbles, II = 1); at the end of the input the valid input goes low and the pipeline
// runs --drain more cycles.
// Output (stdout, or --out FILE): one record on every cycle the valid output is high:
// the cycle number as two 32-bit words (low, high), then OUT_WORDS words of the output port.
// Cycle 0 is the first cycle after reset, on which vector 0 is driven, so vector k's output must
// come on cycle k + latency; the caller checks that and every output value.
//
// Timing, as in the cocotb bench (hgq_rtl_sim.bench): each cycle the inputs change at the falling
// edge, the design settles, the outputs are sampled, then the rising edge.
//
// On success the last line on stderr is `HGQ_FAST_RESULT {json}` and the exit status is 0.
// Bad usage, I/O errors or input that ends inside a vector: a message and status 2.

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

static constexpr int IN_WIDTH = @IN_WIDTH@;
static constexpr int OUT_WIDTH = @OUT_WIDTH@;
static constexpr int IN_WORDS = (IN_WIDTH + 31) / 32;
static constexpr int OUT_WORDS = (OUT_WIDTH + 31) / 32;
static constexpr int RECORD_WORDS = 2 + OUT_WORDS;
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

int main(int argc, char** argv) {
    const char* in_path = "-";
    const char* out_path = "-";
    long long reset_cycles = 4;
    long long drain_cycles = -1;
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
        } else {
            drain_cycles = -1;
            break;
        }
    }
    if (drain_cycles < 0 || reset_cycles < 1) {
        std::fprintf(stderr,
                     "usage: %s --drain CYCLES [--in FILE|-] [--out FILE|-] [--reset-cycles N]\n"
                     "  CYCLES >= 0 (the latency and a margin), N >= 1\n",
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
    put_port<IN_WIDTH>(top->@DATA_IN@, zeros.data());
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
    uint64_t cycle = 0;        // vector k is driven on cycle k
    uint64_t n_in = 0;
    uint64_t n_out = 0;

    auto flush = [&]() {
        write_all(out_fd, out_buffer.data(), out_fill * RECORD_WORDS * sizeof(uint32_t));
        out_fill = 0;
    };
    auto step = [&](const uint32_t* words, bool valid) {
        top->@CLOCK@ = 0;
        put_port<IN_WIDTH>(top->@DATA_IN@, words);
        top->@VALID_IN@ = valid;
        top->eval();
        if (top->@VALID_OUT@) {
            uint32_t* record = &out_buffer[out_fill * RECORD_WORDS];
            record[0] = static_cast<uint32_t>(cycle);
            record[1] = static_cast<uint32_t>(cycle >> 32);
            get_port<OUT_WIDTH>(top->@DATA_OUT@, record + 2);
            ++n_out;
            if (++out_fill == BLOCK_VECTORS) flush();
        }
        top->@CLOCK@ = 1;
        top->eval();
        ++cycle;
    };

    const std::size_t vector_bytes = sizeof(uint32_t) * IN_WORDS;
    const std::size_t buffer_bytes = in_buffer.size() * sizeof(uint32_t);
    char* const in_bytes = reinterpret_cast<char*>(in_buffer.data());
    std::size_t pending = 0;  // bytes in in_buffer not yet driven (a partial vector)
    while (true) {
        const std::size_t got = read_some(in_fd, in_bytes + pending, buffer_bytes - pending);
        if (got == 0) break;
        pending += got;
        const std::size_t whole = pending / vector_bytes;
        for (std::size_t v = 0; v < whole; ++v) step(&in_buffer[v * IN_WORDS], true);
        n_in += whole;
        pending -= whole * vector_bytes;
        if (pending) std::memmove(in_bytes, in_bytes + whole * vector_bytes, pending);
        if (out_fill) flush();  // a reader on a pipe sees the outputs of what it sent so far
    }
    if (pending) {
        std::fprintf(stderr, "hgq-rtl fast harness: the input ends inside a vector (%zu bytes)\n",
                     pending);
        return 2;
    }
    for (long long c = 0; c < drain_cycles; ++c) step(zeros.data(), false);
    if (out_fill) flush();
    if (out_fd != 1 && ::close(out_fd) != 0) fail(out_path);
    top->final();

    std::fprintf(stderr, "HGQ_FAST_RESULT {\"vectors\": %llu, \"outputs\": %llu, \"cycles\": %llu}\n",
                 static_cast<unsigned long long>(n_in), static_cast<unsigned long long>(n_out),
                 static_cast<unsigned long long>(cycle));
    return 0;
}
