// xtensor-rnn: data-parallel training over MPI, opt-in (CMake target xrnn::mpi; needs an MPI such as Open MPI).
//
//   #include <xrnn/xrnn.hpp>
//   #include <xrnn/mpi.hpp>
//   int main(int argc, char** argv) {
//       xrnn::mpi::environment env(argc, argv);            // MPI_Init_thread ... MPI_Finalize
//       auto world = xrnn::mpi::world();                   // every process of mpirun -np N
//       model.distribute(world);                           // rank 0's weights on every rank
//       xrnn::history h = model.fit(x, y, f);              // each rank: its part of every batch of f.batch_size
//       if (world->rank() == 0) model.save("model.xrnnw"); // fit prints and checkpoints on rank 0 only
//   }
//   $ mpirun -np 4 ./train
//
// What fit, evaluate and predict do on the ranks is in model/process_group.hpp; this header is the MPI transport:
// sums are MPI_Allreduce, the gradients of a step are reduced in one fused allreduce per scalar type (as
// Horovod's tensor fusion does), except the row-sparse gradients (an embedding's: only the rows of the tokens in
// the batch are non-zero), which communicator::sparse_gradients chooses how to reduce (V rows of D values, U rows
// non-zero on some rank, R_r on rank r; docs/distributed.md measures the three):
//   (MP1) dense:        the whole (V, D) tensor in the fused allreduce: a ring moves 2 (N-1)/N V D values per rank
//   (MP2) rows:         each rank's non-zero rows and their indices gathered (MPI_Allgatherv) and added on every
//                       rank in rank order: each rank receives sum_{s != r} R_s (D + 1) values, growing with N
//   (MP3) union_rows:   (the default) a bitmap of each rank's non-zero rows is or-ed over the ranks (one allreduce
//                       of V / 8 bytes), then only the U rows of the union go into the fused allreduce:
//                       2 (N-1)/N U D values, never more than dense and, like it, not growing with N
// MPI's errors stop every process (MPI_ERRORS_ARE_FATAL); an exception that the other ranks cannot learn of ends
// them all through abort(), MPI_Abort.
#ifndef XRNN_MPI_HPP
#define XRNN_MPI_HPP

#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include <xrnn/config.hpp>
#include <xrnn/model/process_group.hpp>
#include <xrnn/model/step.hpp>

namespace xrnn
{
    namespace mpi
    {
        /// Initialises MPI (MPI_THREAD_FUNNELED: only the thread that made it calls MPI; xrnn's worker threads
        /// never do) unless it already is, and finalises it at the end of the scope when it initialised it.
        class environment
        {
        public:
            environment()
                : environment(nullptr, nullptr)
            {
            }

            environment(int& argc, char**& argv)
                : environment(&argc, &argv)
            {
            }

            environment(const environment&) = delete;
            environment& operator=(const environment&) = delete;

            ~environment()
            {
                int finalized = 0;
                MPI_Finalized(&finalized);
                if (m_owner && !finalized)
                {
                    MPI_Finalize();
                }
            }

        private:
            environment(int* argc, char*** argv)
            {
                int initialized = 0;
                MPI_Initialized(&initialized);
                if (!initialized)
                {
                    int provided = 0;
                    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
                    {
                        throw state_error("xrnn::mpi::environment: MPI_Init_thread failed");
                    }
                    m_owner = true;
                }
            }

            bool m_owner = false;
        };

        /// How a row-sparse gradient (an embedding's) is reduced; see the header comment.
        enum class sparse_reduction
        {
            dense,      // (MP1)
            rows,       // (MP2)
            union_rows  // (MP3)
        };

        /// What the communicator did so far (for measurements).
        struct statistics
        {
            std::size_t steps = 0;              // reduce_gradients calls
            double gradient_seconds = 0.0;      // time in reduce_gradients (scaling, packing, MPI, unpacking)
            std::size_t dense_values = 0;       // gradient values through the fused allreduce
            std::size_t sparse_rows = 0;        // rows reduced as rows: gathered (MP2), or of the union (MP3)
            std::size_t sparse_values = 0;      // values gathered (MP2; rows x width)
        };

        /// A process_group over an MPI communicator (a duplicate of it, so that xrnn's messages never mix with the
        /// program's own).
        class communicator final : public process_group
        {
        public:
            explicit communicator(MPI_Comm comm = MPI_COMM_WORLD)
            {
                int initialized = 0;
                MPI_Initialized(&initialized);
                if (!initialized)
                {
                    throw state_error("xrnn::mpi::communicator: MPI is not initialised (make an "
                                      "xrnn::mpi::environment first)");
                }
                MPI_Comm_dup(comm, &m_comm);
                int rank = 0;
                int size = 1;
                MPI_Comm_rank(m_comm, &rank);
                MPI_Comm_size(m_comm, &size);
                m_rank = static_cast<std::size_t>(rank);
                m_size = static_cast<std::size_t>(size);
            }

            communicator(const communicator&) = delete;
            communicator& operator=(const communicator&) = delete;

            ~communicator() override
            {
                int finalized = 0;
                MPI_Finalized(&finalized);
                if (!finalized)
                {
                    MPI_Comm_free(&m_comm);
                }
            }

            std::size_t rank() const noexcept override
            {
                return m_rank;
            }

            std::size_t size() const noexcept override
            {
                return m_size;
            }

            MPI_Comm comm() const noexcept
            {
                return m_comm;
            }

            /// How row-sparse gradients are reduced (union_rows unless set).
            sparse_reduction sparse_gradients = sparse_reduction::union_rows;

            /// Row-sparse reduction is considered for tensors of at least this many rows (an embedding; not an
            /// LSTM's few gate rows).
            std::size_t sparse_min_rows = 1024;

            const statistics& stats() const noexcept
            {
                return m_stats;
            }

            void reset_stats() noexcept
            {
                m_stats = statistics{};
            }

            void sum(double* values, std::size_t n) override
            {
                for (std::size_t done = 0; done < n;)
                {
                    const int count = static_cast<int>(std::min<std::size_t>(n - done, chunk));
                    MPI_Allreduce(MPI_IN_PLACE, values + done, count, MPI_DOUBLE, MPI_SUM, m_comm);
                    done += static_cast<std::size_t>(count);
                }
            }

            void broadcast(void* bytes, std::size_t n) override
            {
                char* p = static_cast<char*>(bytes);
                for (std::size_t done = 0; done < n;)
                {
                    const int count = static_cast<int>(std::min<std::size_t>(n - done, chunk));
                    MPI_Bcast(p + done, count, MPI_BYTE, 0, m_comm);
                    done += static_cast<std::size_t>(count);
                }
            }

            std::vector<char> all_gather(const void* bytes, std::size_t n) override
            {
                return gather_v(static_cast<const char*>(bytes), n, MPI_BYTE);
            }

            void reduce_gradients(gradient_set& gradients, double weight) override
            {
                const auto start = std::chrono::steady_clock::now();
                gradients.scale(weight);
                // The row-sparse candidates and the rows that are non-zero on this rank.
                std::vector<sparse_tensor> sparse;
                if (sparse_gradients != sparse_reduction::dense)
                {
                    gradients.for_each_with_rows([&](const std::string&, auto* g, std::size_t n, std::size_t width) {
                        if (width > 0 && n / width >= sparse_min_rows)
                        {
                            sparse.push_back(find_rows(g, n, width));
                        }
                    });
                }
                if (sparse_gradients == sparse_reduction::union_rows && !sparse.empty())
                {
                    union_of_rows(sparse);  // (MP3) one allreduce of the bitmaps
                }
                // (MP1) every tensor, or the union of its rows (MP3), in one fused allreduce per scalar type.
                fuse<float>(gradients, sparse);
                fuse<double>(gradients, sparse);
                if (sparse_gradients == sparse_reduction::rows)
                {
                    for (sparse_tensor& t : sparse)
                    {
                        if (t.is_double)
                        {
                            gather_rows(static_cast<double*>(t.data), t);
                        }
                        else
                        {
                            gather_rows(static_cast<float*>(t.data), t);
                        }
                    }
                }
                ++m_stats.steps;
                m_stats.gradient_seconds
                    += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
            }

            std::string first_failure(const std::string& mine) override
            {
                int candidate = mine.empty() ? static_cast<int>(m_size) : static_cast<int>(m_rank);
                int root = 0;
                MPI_Allreduce(&candidate, &root, 1, MPI_INT, MPI_MIN, m_comm);
                if (root >= static_cast<int>(m_size))
                {
                    return "no rank failed";
                }
                std::uint64_t length = static_cast<int>(m_rank) == root ? mine.size() : 0;
                MPI_Bcast(&length, 1, MPI_UINT64_T, root, m_comm);
                std::string text(static_cast<std::size_t>(length), '\0');
                if (static_cast<int>(m_rank) == root)
                {
                    text = mine;
                }
                MPI_Bcast(&text[0], static_cast<int>(std::min<std::uint64_t>(length, chunk)), MPI_CHAR, root, m_comm);
                return "rank " + std::to_string(root) + " of " + std::to_string(m_size) + " failed: " + text;
            }

            [[noreturn]] void abort(const std::string& message) override
            {
                std::fprintf(stderr, "xrnn: %s; ending all %zu ranks (MPI_Abort)\n", message.c_str(), m_size);
                std::fflush(stderr);
                MPI_Abort(m_comm, 1);
                std::abort();  // MPI_Abort does not return
            }

        private:
            static constexpr std::size_t chunk = std::size_t(1) << 30;  // values per MPI call (counts are int)

            struct sparse_tensor
            {
                void* data;
                std::size_t size;
                std::size_t width;
                bool is_double;
                std::vector<std::int32_t> rows;  // this rank's non-zero rows; after union_of_rows, every rank's
            };

            template <class G>
            static sparse_tensor find_rows(G* g, std::size_t n, std::size_t width)
            {
                sparse_tensor t{g, n, width, std::is_same<G, double>::value, {}};
                for (std::size_t r = 0; r < n / width; ++r)
                {
                    const G* row = g + r * width;
                    if (std::any_of(row, row + width, [](G v) { return v != G(0); }))
                    {
                        t.rows.push_back(static_cast<std::int32_t>(r));
                    }
                }
                return t;
            }

            template <class G>
            static MPI_Datatype type_of() noexcept
            {
                return std::is_same<G, double>::value ? MPI_DOUBLE : MPI_FLOAT;
            }

            /// (MP3) Replaces each tensor's rows by the union over the ranks: bitmaps or-ed in one allreduce.
            void union_of_rows(std::vector<sparse_tensor>& sparse)
            {
                std::vector<std::size_t> first_word;
                std::size_t words = 0;
                for (const sparse_tensor& t : sparse)
                {
                    first_word.push_back(words);
                    words += (t.size / t.width + 63) / 64;
                }
                std::vector<std::uint64_t> bits(words, 0);
                for (std::size_t k = 0; k < sparse.size(); ++k)
                {
                    for (std::int32_t row : sparse[k].rows)
                    {
                        bits[first_word[k] + static_cast<std::size_t>(row) / 64] |= std::uint64_t(1) << (row % 64);
                    }
                }
                MPI_Allreduce(MPI_IN_PLACE, bits.data(), static_cast<int>(words), MPI_UINT64_T, MPI_BOR, m_comm);
                for (std::size_t k = 0; k < sparse.size(); ++k)
                {
                    sparse_tensor& t = sparse[k];
                    t.rows.clear();
                    for (std::size_t row = 0; row < t.size / t.width; ++row)
                    {
                        if ((bits[first_word[k] + row / 64] >> (row % 64)) & 1u)
                        {
                            t.rows.push_back(static_cast<std::int32_t>(row));
                        }
                    }
                    m_stats.sparse_rows += t.rows.size();
                }
            }

            /// (MP1) Packs every tensor of type G into one buffer, allreduces it once and unpacks it: a whole tensor,
            /// only its union rows (MP3), or nothing (MP2, gathered afterwards).
            template <class G>
            void fuse(gradient_set& gradients, const std::vector<sparse_tensor>& sparse)
            {
                auto find = [&](const void* data) -> const sparse_tensor* {
                    for (const sparse_tensor& t : sparse)
                    {
                        if (t.data == data)
                        {
                            return &t;
                        }
                    }
                    return nullptr;
                };
                std::vector<G>& buffer = fusion_buffer<G>();
                buffer.clear();
                // pack (copy_in) or unpack (!copy_in) the same slices in the same order
                auto walk = [&](bool copy_in) {
                    std::size_t offset = 0;
                    gradients.for_each_with_rows([&](const std::string&, auto* g, std::size_t n, std::size_t) {
                        if constexpr (std::is_same<std::remove_pointer_t<decltype(g)>, G>::value)
                        {
                            const sparse_tensor* t = find(g);
                            auto slice = [&](G* from, std::size_t count) {
                                if (copy_in)
                                {
                                    buffer.insert(buffer.end(), from, from + count);
                                }
                                else
                                {
                                    std::copy(buffer.data() + offset, buffer.data() + offset + count, from);
                                }
                                offset += count;
                            };
                            if (t == nullptr)
                            {
                                slice(g, n);
                            }
                            else if (sparse_gradients == sparse_reduction::union_rows)
                            {
                                for (std::int32_t row : t->rows)
                                {
                                    slice(g + static_cast<std::size_t>(row) * t->width, t->width);
                                }
                            }
                        }
                    });
                };
                walk(true);
                if (buffer.empty())
                {
                    return;
                }
                for (std::size_t done = 0; done < buffer.size();)
                {
                    const int count = static_cast<int>(std::min<std::size_t>(buffer.size() - done, chunk));
                    MPI_Allreduce(MPI_IN_PLACE, buffer.data() + done, count, type_of<G>(), MPI_SUM, m_comm);
                    done += static_cast<std::size_t>(count);
                }
                m_stats.dense_values += buffer.size();
                walk(false);
            }

            /// (MP2) Gathers every rank's non-zero rows and indices, and adds them up in rank order on every rank.
            template <class G>
            void gather_rows(G* g, const sparse_tensor& t)
            {
                std::vector<G> mine(t.rows.size() * t.width);
                for (std::size_t k = 0; k < t.rows.size(); ++k)
                {
                    std::copy(g + static_cast<std::size_t>(t.rows[k]) * t.width,
                              g + (static_cast<std::size_t>(t.rows[k]) + 1) * t.width, mine.data() + k * t.width);
                }
                const std::vector<char> ids = gather_v(reinterpret_cast<const char*>(t.rows.data()),
                                                       t.rows.size(), MPI_INT32_T, sizeof(std::int32_t));
                const std::vector<char> values = gather_v(reinterpret_cast<const char*>(mine.data()), mine.size(),
                                                          type_of<G>(), sizeof(G));
                std::fill(g, g + t.size, G(0));
                const std::size_t count = ids.size() / sizeof(std::int32_t);
                for (std::size_t k = 0; k < count; ++k)
                {
                    std::int32_t row = 0;
                    std::memcpy(&row, ids.data() + k * sizeof row, sizeof row);
                    G* to = g + static_cast<std::size_t>(row) * t.width;
                    const char* from = values.data() + k * t.width * sizeof(G);
                    for (std::size_t j = 0; j < t.width; ++j)
                    {
                        G v;
                        std::memcpy(&v, from + j * sizeof(G), sizeof v);
                        to[j] += v;
                    }
                }
                m_stats.sparse_rows += count;
                m_stats.sparse_values += count * t.width;
            }

            /// MPI_Allgatherv of n items of `type` (item bytes each) from every rank, concatenated in rank order.
            std::vector<char> gather_v(const char* items, std::size_t n, MPI_Datatype type, std::size_t item = 1)
            {
                if (n > static_cast<std::size_t>(INT_MAX))
                {
                    throw value_error("xrnn::mpi: a rank gathers " + std::to_string(n) + " items, more than MPI's "
                                      + std::to_string(INT_MAX));
                }
                int mine = static_cast<int>(n);
                std::vector<int> counts(m_size);
                MPI_Allgather(&mine, 1, MPI_INT, counts.data(), 1, MPI_INT, m_comm);
                std::vector<int> offsets(m_size);
                long long total = 0;
                for (std::size_t r = 0; r < m_size; ++r)
                {
                    offsets[r] = static_cast<int>(total);
                    total += counts[r];
                }
                if (total > INT_MAX)
                {
                    throw value_error("xrnn::mpi: the ranks gather " + std::to_string(total) + " items, more than "
                                      "MPI's " + std::to_string(INT_MAX));
                }
                std::vector<char> all(static_cast<std::size_t>(total) * item);
                MPI_Allgatherv(items, mine, type, all.data(), counts.data(), offsets.data(), type, m_comm);
                return all;
            }

            template <class G>
            std::vector<G>& fusion_buffer() noexcept
            {
                if constexpr (std::is_same<G, double>::value)
                {
                    return m_double_buffer;
                }
                else
                {
                    return m_float_buffer;
                }
            }

            MPI_Comm m_comm = MPI_COMM_NULL;
            std::size_t m_rank = 0;
            std::size_t m_size = 1;
            statistics m_stats;
            std::vector<float> m_float_buffer;
            std::vector<double> m_double_buffer;
        };

        /// A communicator over every process of the run (MPI_COMM_WORLD); MPI must be initialised.
        inline std::shared_ptr<communicator> world()
        {
            return std::make_shared<communicator>(MPI_COMM_WORLD);
        }
    }  // namespace mpi
}  // namespace xrnn

#endif
