// Run by CTest under mpirun: rank 1 throws where the other ranks cannot learn of it (in on_epoch_end, outside the
// guarded part of a step), so fit() ends every rank through MPI_Abort with the message, instead of a hang. CTest
// passes when the output holds the message (the run's exit status is not 0) and the run ends within its timeout.
#include <cstdio>

#include <xrnn/model.hpp>
#include <xrnn/mpi.hpp>

int main(int argc, char** argv)
{
    xrnn::mpi::environment env(argc, argv);
    auto world = xrnn::mpi::world();
    xrnn::random_engine rng(1);
    xrnn::sequential<xrnn::gru<double, 1, 4>, xrnn::dense<double, 4, 1>> model(rng);
    model.compile(xrnn::objective::mean_squared_error, xrnn::sgd<double>(0.01));
    model.distribute(world);
    xt::xtensor<double, 3> x = xt::ones<double>({16, 3, 1});
    xt::xtensor<double, 2> y = xt::zeros<double>({16, 1});
    xrnn::fit_options f;
    f.epochs = 1000;  // a hang would run into CTest's timeout
    f.batch_size = 4;
    f.verbosity = xrnn::progress::silent;
    auto thrower = std::make_shared<xrnn::lambda_callback>();
    thrower->epoch_end = [&](xrnn::fit_context&, const xrnn::epoch_logs& logs) {
        if (world->rank() == 1 && logs.epoch == 2)
        {
            throw xrnn::io_error("deliberate failure on rank 1 after epoch 2");
        }
    };
    f.add_callback(thrower);
    model.fit(x, y, f);
    std::printf("fit returned on rank %zu: the failure did not stop it\n", world->rank());
    return 0;
}
